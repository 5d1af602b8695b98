//! Frame times of the explorer while it loads a data set and while the user switches users.
//!
//! ```text
//! cargo run -p hstu-explorer --example frame_bench -- \
//!     --data ~/.cache/hstu/ml-100k/ml-100k.inter --switches 30 --out app/bench-frames.json
//! ```
//!
//! The whole window (1280x800) is drawn through egui_kittest with the wgpu renderer (lavapipe on
//! a machine without a GPU). Per frame: `ui` = the app's CPU frame (events in, panels, commands
//! out), `render` = tessellation + wgpu rasterisation + readback, which a real window does on the
//! GPU instead. `latency` = from the click on a user to the first frame that shows its attention.

use egui_kittest::Harness;
use hstu_explorer::{ExplorerApp, Sources};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Args {
    data: PathBuf,
    switches: usize,
    out: PathBuf,
    render: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        data: hstu_runtime::data::fetch::default_cache_dir().join("ml-100k.inter"),
        switches: 30,
        out: PathBuf::from("bench-frames.json"),
        render: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--data" => a.data = it.next().expect("--data PATH").into(),
            "--switches" => {
                a.switches = it.next().expect("--switches N").parse().expect("a number")
            }
            "--out" => a.out = it.next().expect("--out PATH").into(),
            "--no-render" => a.render = false,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

#[derive(Default)]
struct Phase {
    ui_ms: Vec<f64>,
    render_ms: Vec<f64>,
    latency_ms: Vec<f64>,
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((p / 100.0) * (s.len() - 1) as f64).round() as usize]
}

fn frame(h: &mut Harness<'_, ExplorerApp>, render: bool, phase: &mut Phase) {
    h.step();
    phase.ui_ms.push(h.state().state.frame_ms);
    if render {
        let t = Instant::now();
        h.render().expect("render");
        phase.render_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
}

fn main() {
    let args = parse_args();
    let mut sources = Sources::bundled();
    sources.data_path = args.data.clone();
    let mut h = Harness::builder()
        .with_size([1280.0, 800.0])
        .wgpu()
        .build_ui_state(
            |ui, app: &mut ExplorerApp| app.frame_ui(ui),
            ExplorerApp::new(sources, None),
        );
    let (mut load, mut switch) = (Phase::default(), Phase::default());
    let start = Instant::now();
    while h.state().state.current_analysis().is_none() {
        frame(&mut h, args.render, &mut load);
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "loading took over 5 minutes"
        );
    }
    load.latency_ms.push(start.elapsed().as_secs_f64() * 1e3);
    let users = h.state().state.data.as_ref().map_or(0, |d| d.users.len());
    let info = h
        .state()
        .state
        .data
        .as_ref()
        .map(|d| (d.interactions, d.origin.clone()));
    for k in 1..=args.switches.min(users.saturating_sub(1)) {
        let index = (k * 7919) % users;
        let t = Instant::now();
        h.state_mut().state.select_user(index);
        loop {
            frame(&mut h, args.render, &mut switch);
            if h.state()
                .state
                .current_analysis()
                .is_some_and(|a| a.user_index == index)
            {
                break;
            }
        }
        switch.latency_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("data: {} ({users} users, {:?})", args.data.display(), info);
    println!(
        "| phase | frames | ui p50 / p95 / max ms | render p50 / p95 / max ms | latency p50 / max ms |"
    );
    println!("|---|---|---|---|---|");
    let mut json = serde_json::Map::new();
    for (name, p) in [("load", &load), ("switch user", &switch)] {
        let f = |v: &[f64]| {
            format!(
                "{:.2} / {:.2} / {:.2}",
                pct(v, 50.0),
                pct(v, 95.0),
                pct(v, 100.0)
            )
        };
        println!(
            "| {name} | {} | {} | {} | {:.1} / {:.1} |",
            p.ui_ms.len(),
            f(&p.ui_ms),
            f(&p.render_ms),
            pct(&p.latency_ms, 50.0),
            pct(&p.latency_ms, 100.0)
        );
        let stats = |v: &[f64]| serde_json::json!({"p50": pct(v, 50.0), "p95": pct(v, 95.0), "max": pct(v, 100.0), "n": v.len()});
        json.insert(
            name.into(),
            serde_json::json!({"frames": p.ui_ms.len(), "ui_ms": stats(&p.ui_ms), "render_ms": stats(&p.render_ms), "latency_ms": stats(&p.latency_ms)}),
        );
    }
    json.insert("data".into(), args.data.display().to_string().into());
    json.insert("users".into(), users.into());
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("writing the JSON");
    println!("wrote {}", args.out.display());
}
