//! The writer's records read back: framing, CRCs, history, config and summary.
use super::*;

/// Reads the framing back, checking every CRC: (chunk kinds, reassembled records).
fn read(bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let records = read_records(bytes).unwrap();
    let mut kinds = Vec::new();
    let mut pos = FILE_HEADER.len();
    while pos < bytes.len() {
        if BLOCK - pos % BLOCK < CHUNK_HEADER {
            pos += BLOCK - pos % BLOCK;
            continue;
        }
        kinds.push(bytes[pos + 6]);
        pos += CHUNK_HEADER + usize::from(u16::from_le_bytes([bytes[pos + 4], bytes[pos + 5]]));
    }
    (kinds, records)
}

#[test]
fn crc_check_value() {
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
}

#[test]
fn records_larger_than_a_block_span_first_middle_last() {
    let mut log = RecordLog::new(Vec::new()).unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    log.write_record(b"small").unwrap();
    log.write_record(&big).unwrap();
    log.write_record(b"after").unwrap();
    let (kinds, records) = read(&log.into_inner());
    assert_eq!(kinds, [1, 2, 3, 3, 4, 1]);
    assert_eq!(records, [b"small".to_vec(), big, b"after".to_vec()]);
}

#[test]
fn records_ending_near_a_block_boundary() {
    // k bytes before the boundary for k = 0..8: exact fit, zero padding, zero-length FIRST (k = 7).
    for k in 0..=8usize {
        let mut log = RecordLog::new(Vec::new()).unwrap();
        let first = BLOCK - 7 - CHUNK_HEADER - k;
        log.write_record(&vec![7u8; first]).unwrap();
        log.write_record(b"next record").unwrap();
        let bytes = log.into_inner();
        let (kinds, records) = read(&bytes);
        assert_eq!(records.len(), 2, "k={k}");
        assert_eq!(records[1], b"next record");
        if k == 7 {
            assert_eq!(kinds, [1, 2, 4], "k=7 gives a zero-length FIRST chunk");
        } else if k == 8 {
            assert_eq!(kinds, [1, 2, 4]);
        } else {
            assert_eq!(kinds, [1, 1], "k={k}");
        }
    }
}

/// Golden bytes of every record type we write, derived by hand from wandb_internal.proto field numbers.
#[test]
fn record_encodings() {
    // Record{num=1, exit=18: RunExitRecord{exit_code=1: 1, runtime=2: 5}}: field 18 is tag 0x92 0x01.
    let exit = Message::new().int(1, 1).int(2, 5);
    let rec = Message::new().int(1, 1).message(18, &exit);
    assert_eq!(
        rec.0,
        [0x08, 0x01, 0x92, 0x01, 0x04, 0x08, 0x01, 0x10, 0x05]
    );
    // HistoryItem{key=1: "a", value_json=16: "1"} and HistoryStep{num=1: 3} in HistoryRecord{item=1, step=2}.
    let history = Message::new()
        .message(1, &item("a", "1"))
        .message(2, &Message::new().int(1, 3));
    assert_eq!(
        history.0,
        [0x0a, 0x07, 0x0a, 0x01, b'a', 0x82, 0x01, 0x01, b'1', 0x12, 0x02, 0x08, 0x03]
    );
    let rec = Message::new().int(1, 2).message(2, &history);
    assert_eq!(&rec.0[..4], &[0x08, 0x02, 0x12, 13]);
    // SummaryRecord{update=1: SummaryItem} inside Record field 3.
    let summary = Message::new().message(1, &item("a", "1"));
    assert_eq!(Message::new().message(3, &summary).0[..2], [0x1a, 0x09]);
    // RunRecord: run_id=1, project=3, config=4 (ConfigRecord{update=1: ConfigItem}), start_time=17 (tag 0x8a 0x01).
    let opts = WandbOptions {
        run_id: "r".into(),
        project: Some("p".into()),
        config: serde_json::json!({"k": 1}),
        ..Default::default()
    };
    let run = run_record(&opts, 7).0;
    assert_eq!(&run[..6], &[0x0a, 0x01, b'r', 0x1a, 0x01, b'p']);
    assert_eq!(
        &run[6..8],
        &[0x22, 0x09],
        "config: ConfigRecord with one 7-byte ConfigItem"
    );
    assert_eq!(
        &run[run.len() - 5..],
        &[0x8a, 0x01, 0x02, 0x08, 0x07],
        "start_time = Timestamp {{ seconds: 7 }}"
    );
}

#[test]
fn values_and_ids() {
    assert_eq!(value_json(f64::NAN), "NaN");
    assert_eq!(value_json(f64::INFINITY), "Infinity");
    assert_eq!(value_json(3.0), "3");
    assert_eq!(value_json(0.25), "0.25");
    assert_eq!(sanitize_run_id(" my:run/1 "), "myrun1");
    assert_eq!(utc_stamp(0), "19700101_000000");
    assert_eq!(
        utc_stamp(1_795_000_000),
        "20261118_110640",
        "date -u -d @1795000000"
    );
}
