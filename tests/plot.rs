//! `olmo-train plot`: the picture of a short run draws exactly the values of its metrics.jsonl (the SVG
//! keeps the series it drew), its loss line falls on the page as the loss falls, several runs are
//! overlaid, PNG works, and bad input is one line.
mod common;

use std::process::Command;

fn olmo_train(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(args)
        .output()
        .unwrap()
}

/// The points of the first data line (plotters draws series 2 px wide; axes and grid 1 px).
fn first_series_points(svg: &str) -> Vec<(f64, f64)> {
    let start =
        svg.find("stroke-width=\"2\" points=\"").unwrap() + "stroke-width=\"2\" points=\"".len();
    let end = start + svg[start..].find('"').unwrap();
    svg[start..end]
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_picture_draws_the_metrics_file_and_the_loss_falls() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::tiny_run(dir.path(), "run", 1, 20, &["--train_module.optim.lr=0.02"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run_dir = dir.path().join("run");
    let losses = common::losses(&run_dir);
    assert!(
        losses.last().unwrap() < &losses[0],
        "the run learns: {losses:?}"
    );

    let out = olmo_train(&["plot", run_dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg_path = run_dir.join("plot.svg");
    assert!(String::from_utf8_lossy(&out.stdout).contains(svg_path.to_str().unwrap()));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("train/CE loss"));
    let series = olmo_train::plot::series_in_svg(&svg).unwrap();
    let ce = series
        .iter()
        .find(|s| s["metric"] == "train/CE loss")
        .unwrap();
    let drawn: Vec<f64> = ce["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(drawn, losses, "the plotted series is metrics.jsonl's");
    let steps: Vec<f64> = ce["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(steps, (1..=20).map(f64::from).collect::<Vec<_>>());
    assert!(series.iter().any(|s| s["metric"] == "optim/LR (group 0)"));

    // The loss line (the first panel's) has a point per step, each lower on the page (larger y) the
    // lower the loss: pixel order follows value order.
    let points = first_series_points(&svg);
    assert_eq!(points.len(), losses.len());
    for i in 1..points.len() {
        assert!(points[i].0 > points[i - 1].0);
        if losses[i] < losses[i - 1] - 0.05 {
            assert!(
                points[i].1 >= points[i - 1].1,
                "step {}: {points:?} vs {losses:?}",
                i + 1
            );
        }
    }
    assert!(points.last().unwrap().1 > points[0].1, "the line falls");

    // Two runs overlaid, tokens on x, as PNG.
    let png = dir.path().join("both.png");
    let out = olmo_train(&[
        "plot",
        run_dir.join("metrics.jsonl").to_str().unwrap(),
        run_dir.to_str().unwrap(),
        "--metrics",
        "train/*",
        "--x",
        "tokens",
        "--output",
        png.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");

    for (args, want) in [
        (
            vec!["plot", run_dir.to_str().unwrap(), "--metrics", "nope/*"],
            "no metric in",
        ),
        (
            vec!["plot", "/nonexistent/run"],
            "/nonexistent/run: no such file",
        ),
        (
            vec!["plot", run_dir.to_str().unwrap(), "--output", "/tmp/x.gif"],
            ".svg or .png",
        ),
    ] {
        let o = olmo_train(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            stderr.lines().last().unwrap_or_default().contains(want),
            "{args:?}: {stderr}"
        );
    }
}
