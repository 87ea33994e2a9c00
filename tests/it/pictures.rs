//! The pictures: the architecture SVG (structure snapshotted, layout checked), the diff overlay
//! against the structural diff, the run report from real, killed and broken run directories, the
//! step log across a resume, and every page looked at in headless Chromium.

use crate::cli::recspec;
use crate::Scratch;
use crate::{graph, root, settings};
use recspec::diff::ChangeKind;
use std::path::{Path, PathBuf};
use std::process::Command;

fn temp(name: &str) -> Scratch {
    Scratch::new(&format!("pictures-{name}"))
}

/// A drawn box or edge: its classes, its tooltip and, for a box, its rectangle.
#[derive(Debug)]
struct Drawn {
    class: String,
    title: String,
    rect: Option<[f64; 4]>,
}

/// Parses the SVG (it must be well-formed XML) and lists every tagged group in order.
fn drawn(svg: &str) -> (Vec<Drawn>, [f64; 2]) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("the SVG is not well-formed: {e}"));
    let root = doc.root_element();
    let size = |a: &str| root.attribute(a).and_then(|v| v.parse::<f64>().ok()).expect("width and height");
    let mut out = vec![];
    for g in root.descendants().filter(|n| n.has_tag_name("g") && n.attribute("class").is_some()) {
        let title = g.children().find(|c| c.has_tag_name("title")).and_then(|t| t.text()).unwrap_or("").to_string();
        let rect = g.children().find(|c| c.has_tag_name("rect")).map(|r| {
            let v = |a: &str| r.attribute(a).and_then(|v| v.parse::<f64>().ok()).expect("rect attribute");
            [v("x"), v("y"), v("width"), v("height")]
        });
        out.push(Drawn { class: g.attribute("class").unwrap().to_string(), title, rect });
    }
    (out, [size("width"), size("height")])
}

#[test]
fn dfn_is_drawn_with_every_part_once_inside_the_picture_and_without_overlaps() {
    let g = graph(&root().join("specs/dfn.recspec"));
    let svg = recspec::picture::architecture(&g).unwrap();
    let (parts, [w, h]) = drawn(&svg);
    let boxes: Vec<&Drawn> = parts.iter().filter(|d| d.class.starts_with("item")).collect();
    assert_eq!(boxes.len(), g.inputs.len() + g.nodes.len() + g.losses.len() + g.outputs.len());
    for (kind, expected) in [
        ("sequence", 3),
        ("loss", g.losses.len()),
        ("output", g.outputs.len()),
        ("component", g.nodes.iter().filter(|n| n.instance.is_some()).count()),
    ] {
        let n = boxes.iter().filter(|d| d.class.split(' ').any(|c| c == kind)).count();
        assert_eq!(n, expected, "boxes of kind {kind}");
    }
    let rects: Vec<[f64; 4]> = boxes.iter().map(|d| d.rect.expect("a box has a rect")).collect();
    for (i, r) in rects.iter().enumerate() {
        assert!(r.iter().all(|v| v.is_finite()) && r[2] > 10.0 && r[3] > 10.0, "box {i}: {r:?}");
        assert!(r[0] >= 0.0 && r[1] >= 0.0 && r[0] + r[2] <= w && r[1] + r[3] <= h, "box {i} {r:?} outside {w}x{h}");
        for (j, s) in rects.iter().enumerate().skip(i + 1) {
            let apart = r[0] + r[2] <= s[0] || s[0] + s[2] <= r[0] || r[1] + r[3] <= s[1] || s[1] + s[3] <= r[1];
            assert!(apart, "{} overlaps {}", boxes[i].title, boxes[j].title);
        }
    }
    // Edges carry the symbolic shape and the evaluated one (T = 30, D = 64 in dfn).
    assert!(svg.contains("float[B, T + 1, D]") && svg.contains("= [B, 31, 64]"), "shape labels");
    // The structure (not the pixels) is snapshotted: every box and edge with its tooltip.
    let structure: String = parts.iter().map(|d| format!("{} | {}\n", d.class, d.title)).collect();
    settings().bind(|| insta::assert_snapshot!("picture_dfn_structure", structure));
}

#[test]
fn the_picture_is_the_same_bytes_every_time() {
    // layout-rs keeps hash sets; each render builds new ones with new random keys.
    let g = graph(&root().join("specs/dlen.recspec"));
    let first = recspec::picture::architecture(&g).unwrap();
    for _ in 0..3 {
        assert!(recspec::picture::architecture(&g).unwrap() == first, "the SVG changed between renders");
    }
}

#[test]
fn every_shipped_spec_is_drawn() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("specs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "recspec") {
            let g = graph(&p);
            let (parts, _) = drawn(&recspec::picture::architecture(&g).unwrap());
            let boxes = parts.iter().filter(|d| d.class.starts_with("item")).count();
            assert_eq!(boxes, g.inputs.len() + g.nodes.len() + g.losses.len() + g.outputs.len(), "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 5, "drew {n} specs");
}

/// The overlay marks exactly the nodes the structural diff reports, each with its kind.
#[test]
fn the_overlay_marks_what_the_diff_reports() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root().join("tests/data/diff"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let mut marked_somewhere = 0;
    let mut features_marked = 0;
    for case in cases {
        let (old, new) = (graph(&case.join("old.recspec")), graph(&case.join("new.recspec")));
        let report = recspec::diff::diff(&old, &new);
        let (parts, _) = drawn(&recspec::picture::overlay(&old, &new).unwrap());
        for (kind, word) in [(ChangeKind::Added, "added"), (ChangeKind::Removed, "removed")] {
            let mut expected: Vec<String> = report
                .sections
                .iter()
                .filter(|s| s.title == "nodes")
                .flat_map(|s| s.changes.iter().filter(|c| c.kind == kind).map(|c| c.name.clone()))
                .collect();
            let mut marked: Vec<String> = parts
                .iter()
                .filter(|d| d.class.starts_with("item") && d.class.split(' ').any(|c| c == word))
                .filter(|d| !d.class.contains("loss") && !d.class.contains("output") && !d.class.contains("input"))
                .filter(|d| !d.class.contains("sequence") && !d.class.contains("mask"))
                .map(|d| d.title.trim_start_matches(&format!("{word}: ")).split(" = ").next().unwrap().to_string())
                .collect();
            expected.sort();
            marked.sort();
            assert_eq!(marked, expected, "{word} nodes in {}", case.display());
            marked_somewhere += marked.len();
        }
        let changed_nodes: Vec<&String> = report
            .sections
            .iter()
            .filter(|s| s.title == "nodes")
            .flat_map(|s| s.changes.iter().filter(|c| c.kind == ChangeKind::Changed).map(|c| &c.name))
            .collect();
        for name in changed_nodes {
            let prefix = format!("changed: {name} = ");
            assert!(
                parts.iter().any(|d| d.class.contains("changed") && d.title.starts_with(&prefix)),
                "{name} is not marked changed in {}",
                case.display()
            );
        }
        // A changed feature marks the input it fills.
        let changed_features: Vec<String> = report
            .sections
            .iter()
            .filter(|s| s.title == "features")
            .flat_map(|s| s.changes.iter().filter(|c| c.kind == ChangeKind::Changed).map(|c| c.name.clone()))
            .filter_map(|key| {
                let (statement, input) = key.split_once(' ')?;
                ["feature", "seq", "side"].contains(&statement).then(|| input.to_string())
            })
            .collect();
        for input in &changed_features {
            let prefix = format!("changed: input {input}: ");
            assert!(
                parts.iter().any(|d| d.class.contains("changed") && d.title.starts_with(&prefix)),
                "the input of the changed feature `{input}` is not marked changed in {}",
                case.display()
            );
        }
        features_marked += changed_features.len();
        if report.same {
            assert!(!parts.iter().any(|d| d.class.contains("added") || d.class.contains("removed")));
        }
    }
    assert!(marked_somewhere > 0, "no case added or removed a node");
    assert!(features_marked >= 3, "the feature_change case changes device, price and clicks: {features_marked}");
}

/// `recspec train` of a small DFN, 6 steps an epoch up to epoch `epochs`.
fn train_dfn(data: &Path, run: &Path, epochs: usize, extra: &[&str]) -> std::process::Output {
    let epochs = epochs.to_string();
    let (data, run) = (data.to_str().unwrap(), run.to_str().unwrap());
    let mut args = vec!["train", "specs/dfn.recspec", "--data", data, "--out", run, "--epochs", &epochs];
    args.extend(["--max-steps", "6", "--batch-size", "32", "--set", "D=16"]);
    args.extend(extra);
    recspec(&args)
}

/// Simulates a small data set and trains DFN on it for two short epochs with the binary.
fn trained_run(name: &str) -> (Scratch, PathBuf, PathBuf) {
    let dir = temp(name);
    let (data, run) = (dir.join("data"), dir.join("run"));
    let sim = recspec(&["simulate", "--out", data.to_str().unwrap(), "--users", "80", "--impressions", "20"]);
    assert!(sim.status.success(), "{}", String::from_utf8_lossy(&sim.stderr));
    let train = train_dfn(&data, &run, 2, &[]);
    assert!(train.status.success(), "{}", String::from_utf8_lossy(&train.stderr));
    (dir, data, run)
}

fn steps_of(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("steps.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_step_log_holds_each_step_once_across_a_killed_epoch_and_a_resume() {
    let (_dir, data, run) = trained_run("resume");
    assert_eq!(steps_of(&run), (1..=12).collect::<Vec<u64>>());
    // A run killed in its third epoch left lines for steps past its checkpoint (step 12).
    let mut log = std::fs::read_to_string(run.join("steps.jsonl")).unwrap();
    for step in 13..=15 {
        log.push_str(&format!("{{\"step\":{step},\"epoch\":3,\"loss\":9.0,\"terms\":{{}}}}\n"));
    }
    std::fs::write(run.join("steps.jsonl"), log).unwrap();
    let resume = train_dfn(&data, &run, 3, &["--resume"]);
    assert!(resume.status.success(), "{}", String::from_utf8_lossy(&resume.stderr));
    assert_eq!(steps_of(&run), (1..=18).collect::<Vec<u64>>());
    let last: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(run.join("steps.jsonl")).unwrap().lines().last().unwrap())
            .unwrap();
    assert_ne!(last["loss"].as_f64(), Some(9.0), "the killed epoch's lines were replaced");
    assert_eq!(last["epoch"].as_u64(), Some(3));
    let terms = last["terms"].as_object().unwrap();
    assert_eq!(terms.len(), 3, "click, unclick and dislike: {terms:?}");
}

fn report(runs: &[&Path]) -> (bool, String, String) {
    let mut args = vec!["report"];
    args.extend(runs.iter().map(|r| r.to_str().unwrap()));
    let out = recspec(&args);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn a_report_shows_what_a_run_has_and_says_what_it_lacks() {
    let (_dir, _, run) = trained_run("report");
    let (ok, page, err) = report(&[&run]);
    assert!(ok, "{err}");
    for part in ["training loss per step", "validation AUC", "validation GAUC", "validation log loss", "Model card"] {
        assert!(page.contains(part), "missing {part}");
    }
    assert!(page.contains("class=\"item sequence\""), "the architecture picture");
    assert!(!page.contains("class=\"note\""), "a complete run has nothing to note");
    assert!(self_contained(&page), "loads nothing");

    // Killed in epoch 1: steps (the last line torn), no metrics, no checkpoint.
    let killed = temp("killed");
    for f in ["run.toml", "spec.recspec"] {
        std::fs::copy(run.join(f), killed.join(f)).unwrap();
    }
    std::fs::write(
        killed.join("steps.jsonl"),
        "{\"step\":1,\"epoch\":1,\"loss\":0.9,\"terms\":{\"click\":0.5}}\n\
         {\"step\":2,\"epoch\":1,\"loss\":null,\"terms\":{\"click\":null}}\n\
         {\"step\":3,\"epoch\":1,\"loss\":0.7,\"terms\":{\"click\":0.4}}\n{\"step\":4,\"ep",
    )
    .unwrap();
    let (ok, page, err) = report(&[&killed]);
    assert!(ok, "{err}");
    assert!(page.contains("training loss per step"));
    assert!(page.contains("no completed epoch yet"), "says there are no metrics");
    assert!(page.contains("an unfinished last line was skipped"), "says a line was torn");
    assert!(page.contains("1 value not finite: shown as gaps"), "the null loss is a gap");
    assert!(!page.contains("validation AUC"));

    // Nothing at all: refused, naming the directory.
    let empty = temp("empty");
    let (ok, _, err) = report(&[&empty]);
    assert!(!ok);
    assert!(err.contains(&empty.display().to_string()) && err.contains("not a run directory"), "{err}");

    // A retrieval head's recall and NDCG at each K, one series per head and K, in charts of their
    // own with the metric on the y axis (metrics lines as the runtime writes them).
    let retrieval = temp("retrieval");
    for f in ["run.toml", "spec.recspec", "steps.jsonl"] {
        std::fs::copy(run.join(f), retrieval.join(f)).unwrap();
    }
    let head = |r: [f64; 2], n: f64| serde_json::json!({"examples": 40, "recall": {"@10": r[0], "@50": r[1]}, "ndcg": {"@10": n}});
    let lines: Vec<String> = (1..=2)
        .map(|epoch| {
            let e = epoch as f64;
            serde_json::json!({"epoch": epoch, "train_loss": 0.5 / e, "valid": {"rows": 40, "bad_rows": 0,
                "streams": {}, "retrieval": {"watch": head([0.1 * e, 0.3 * e], 0.05 * e)}}})
            .to_string()
        })
        .collect();
    std::fs::write(retrieval.join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
    let (ok, page, err) = report(&[&retrieval]);
    assert!(ok, "{err}");
    for part in ["validation recall@K", "validation NDCG@K", "watch recall@10", "watch recall@50", "watch ndcg@10"] {
        assert!(page.contains(part), "missing {part}");
    }
    let axis = |label: &str| page.contains(&format!(">\n{label}\n</text>"));
    assert!(axis("recall@K") && axis("NDCG@K"), "the y axes name the metric");
    assert!(!page.contains("watch ndcg@50") && !page.contains("validation AUC"), "only what the run reports");

    // Two runs overlaid: each series is named by its run.
    let (ok, page, err) = report(&[&run, &killed]);
    assert!(ok, "{err}");
    assert!(page.contains(&format!("{}: loss (weighted sum)", run.display())));
    assert!(page.contains(&format!("{}: loss (weighted sum)", killed.display())));
}

/// The only addresses a page may name are XML namespaces: it loads nothing.
fn self_contained(page: &str) -> bool {
    page.match_indices("http").all(|(i, _)| page[..i].ends_with("xmlns=\""))
}

#[test]
fn the_pages_load_nothing_from_anywhere() {
    let out = recspec(&["compile", "specs/dfn.recspec", "--emit", "html"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(self_contained(&page));
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("src="));
    let out = recspec(&[
        "diff",
        "tests/data/diff/added_feedback/old.recspec",
        "tests/data/diff/added_feedback/new.recspec",
        "--format",
        "html",
    ]);
    assert_eq!(out.status.code(), Some(1), "different architectures exit 1");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(self_contained(&page) && page.contains("class=\"item sequence added\""), "the added feedback");
    assert!(page.len() < 1_000_000, "small enough to attach: {} bytes", page.len());
}

// ---- headless Chromium ----

/// Chromium. Without one the test fails (the README's test command installs Debian's), unless
/// `RECSPEC_SKIP_BROWSER=1` says to skip, loudly: the test command sets it only where chromium
/// cannot be installed, so that a `cargo test` run that finds no browser does not pass quietly.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("RECSPEC_CHROMIUM").map(PathBuf::from).or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
            let out = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().ok()?;
            out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
    });
    if found.is_none() {
        assert!(
            std::env::var("RECSPEC_SKIP_BROWSER").as_deref() == Ok("1"),
            "no chromium found (apt-get install chromium, as scripts/test.sh does); \
             RECSPEC_SKIP_BROWSER=1 skips the headless-browser checks of the pictures"
        );
        eprintln!(
            "\n!!!!!!!!\n!!! SKIPPED: the headless-browser checks of the pictures: no chromium here \
             (RECSPEC_SKIP_BROWSER=1)\n!!!!!!!!\n"
        );
    }
    found
}

/// What Chromium saw: the screenshot's pixels (RGBA) and the page's console messages.
struct Looked {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
    console: Vec<String>,
}

fn look_at(browser: &Path, page: &Path, size: (u32, u32)) -> Looked {
    let dir = page.with_extension("chromium");
    let shot = page.with_extension("png");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", dir.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(shot.exists(), "no screenshot of {}: {stderr}", page.display());
    let console = stderr.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => buf[..info.buffer_size()].to_vec(),
        png::ColorType::Rgb => buf[..info.buffer_size()].chunks(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    Looked { width: info.width, height: info.height, rgba, console }
}

impl Looked {
    /// The share of pixels that are not (near) white, and the number of distinct colours.
    fn ink(&self) -> (f64, usize) {
        let pixels: Vec<&[u8]> = self.rgba.chunks(4).collect();
        let inked = pixels.iter().filter(|p| p[0] < 235 || p[1] < 235 || p[2] < 235).count();
        let colours: std::collections::BTreeSet<[u8; 3]> = pixels.iter().map(|p| [p[0], p[1], p[2]]).collect();
        (inked as f64 / pixels.len().max(1) as f64, colours.len())
    }

    fn assert_drawn(&self, what: &str) {
        assert!(self.width > 0 && self.height > 0);
        let (ink, colours) = self.ink();
        assert!(ink > 0.01 && colours > 8, "{what} looks blank: {:.2}% ink, {colours} colours", ink * 100.0);
        assert!(self.console.is_empty(), "{what} logged to the console: {:#?}", self.console);
    }
}

#[test]
fn chromium_shows_the_pages_drawn_and_without_console_errors() {
    let Some(browser) = chromium() else { return };
    let dir = temp("browser");

    // The harness itself: a blank page is blank, and a console error is caught.
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body><script>console.error('boom')</script></body></html>").unwrap();
    let seen = look_at(&browser, &blank, (400, 300));
    assert!(seen.ink().0 < 0.001, "a blank page has no ink");
    assert!(seen.console.iter().any(|l| l.contains("boom")), "the console error is seen: {:?}", seen.console);

    let write = |name: &str, args: &[&str]| {
        let out = recspec(args);
        assert!(out.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&out.stderr));
        let p = dir.join(name);
        std::fs::write(&p, out.stdout).unwrap();
        p
    };
    let svg = write("dfn.svg", &["compile", "specs/dfn.recspec", "--emit", "svg"]);
    let html = write("dfn.html", &["compile", "specs/dfn.recspec", "--emit", "html"]);
    let diff = write(
        "diff.html",
        &[
            "diff",
            "tests/data/diff/added_feedback/old.recspec",
            "tests/data/diff/added_feedback/new.recspec",
            "--format",
            "html",
        ],
    );
    let (_dir, _, run) = trained_run("browser-run");
    let report_page = dir.join("report.html");
    let out = recspec(&["report", run.to_str().unwrap(), "--out", report_page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The SVG file on its own, as an image scaled to the window's width.
    let svg_page = dir.join("svg.html");
    std::fs::write(&svg_page, format!("<!DOCTYPE html><img src=\"{}\" style=\"width:100%\">", svg.display())).unwrap();
    for (page, what) in
        [(&svg_page, "DFN's SVG"), (&html, "DFN's page"), (&diff, "the diff page"), (&report_page, "the report")]
    {
        look_at(&browser, page, (1280, 1000)).assert_drawn(what);
    }
    // The diff page shows the added parts in green somewhere on its first screen or two.
    let seen = look_at(&browser, &diff, (1280, 2400));
    let green = seen.rgba.chunks(4).filter(|p| p[0] < 60 && p[1] > 140 && p[1] < 180 && p[2] < 90).count();
    assert!(green > 50, "the added parts are drawn in green: {green} pixels");
}
