//! The few protobuf wire-format encodings the W&B and TensorBoard writers need (no schema compiler):
//! varints, length-delimited fields, 64-bit and 32-bit fixed fields.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Message(pub Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Message {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    fn tag(&mut self, field: u32, wire: u8) {
        varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire));
    }

    pub fn uint(mut self, field: u32, v: u64) -> Self {
        self.tag(field, 0);
        varint(&mut self.0, v);
        self
    }

    pub fn int(self, field: u32, v: i64) -> Self {
        self.uint(field, v as u64)
    }

    pub fn bool(self, field: u32, v: bool) -> Self {
        self.uint(field, u64::from(v))
    }

    pub fn bytes(mut self, field: u32, v: &[u8]) -> Self {
        self.tag(field, 2);
        varint(&mut self.0, v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn string(self, field: u32, v: &str) -> Self {
        self.bytes(field, v.as_bytes())
    }

    pub fn message(self, field: u32, m: &Message) -> Self {
        self.bytes(field, &m.0)
    }

    pub fn double(mut self, field: u32, v: f64) -> Self {
        self.tag(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn float(mut self, field: u32, v: f32) -> Self {
        self.tag(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_encodings() {
        // protobuf's documented examples: field 1 = 150 → 08 96 01; field 2 = "testing" → 12 07 74 65 73 74 69 6e 67.
        assert_eq!(Message::new().uint(1, 150).0, [0x08, 0x96, 0x01]);
        assert_eq!(Message::new().string(2, "testing").0, b"\x12\x07testing");
        // value_json is field 16: tag bytes 0x82 0x01.
        assert_eq!(&Message::new().string(16, "1").0[..2], &[0x82, 0x01]);
        assert_eq!(
            Message::new().int(1, -1).0.len(),
            11,
            "negative int64 is a 10-byte varint"
        );
        assert_eq!(
            Message::new().double(1, 1.0).0,
            [0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]
        );
        assert_eq!(Message::new().float(2, 1.0).0, [0x15, 0, 0, 0x80, 0x3f]);
    }
}
