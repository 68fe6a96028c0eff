//! The real `flowmatch` binary, run for every subcommand and every bad input
//! the tool promises to reject cleanly. (One test binary: it links libtorch.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn flowmatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowmatch"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("flowmatch runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn succeeds(args: &[&str]) -> Output {
    let output = flowmatch(args);
    assert!(output.status.success(), "{args:?} failed: {}", stderr(&output));
    output
}

/// Runs a command that must fail with `code`, one line naming the problem, no panic.
fn fails(args: &[&str], code: i32, needle: &str) {
    let output = flowmatch(args);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {message}");
    assert!(message.contains(needle), "{args:?}: expected `{needle}` in: {message}");
    assert_eq!(message.trim_end().lines().count(), 1, "{args:?}: not one line: {message}");
    assert!(message.starts_with("flowmatch: "), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    // Nothing half-written beside any path the command was given.
    for arg in args.iter().filter(|arg| arg.contains('/')) {
        let Some(dir) = Path::new(arg).parent().filter(|dir| dir.is_dir()) else { continue };
        for entry in std::fs::read_dir(dir).expect("list").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "{args:?} left {}", entry.path().display());
        }
    }
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("flowmatch-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.0.join(name), text).expect("write");
        self.path(name)
    }

    /// Nothing half-written: no temp files anywhere under the scratch dir.
    fn assert_no_temp_files(&self) {
        fn walk(dir: &Path) {
            for entry in std::fs::read_dir(dir).expect("list").flatten() {
                let path = entry.path();
                assert!(!path.to_string_lossy().ends_with(".tmp"), "left behind: {}", path.display());
                if path.is_dir() {
                    walk(&path);
                }
            }
        }
        walk(&self.0);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn logprob_scores_points_and_refuses_what_it_cannot_score() {
    let scratch = Scratch::new("logprob");
    let model = train_small(&scratch, "run", &[]);
    let points = scratch.path("points.csv");
    succeeds(&["data", "--name", "spiral", "--n", "40", "--out", &points]);
    let out = scratch.path("logp.csv");
    succeeds(&["logprob", "--model", &model, "--input", &points, "--out", &out]);
    let rows = lines(&out);
    assert_eq!(rows[0], "log_prob");
    assert_eq!(rows.len(), 41);
    assert!(rows[1..].iter().all(|r| r.parse::<f64>().is_ok_and(f64::is_finite)), "{rows:?}");
    // Hutchinson with several probes adds standard errors.
    let estimated = scratch.path("estimated.csv");
    succeeds(&[
        "logprob", "--model", &model, "--input", &points, "--probes", "4", "--solver", "rk4", "--out",
        &estimated,
    ]);
    assert_eq!(lines(&estimated)[0], "log_prob,standard_error");
    // Points of another dimension, and a source whose density has no closed form: run-time errors.
    let wide = scratch.path("wide.csv");
    succeeds(&["data", "--name", "gaussian", "--dim", "3", "--n", "5", "--out", &wide]);
    fails(
        &["logprob", "--model", &model, "--input", &wide, "--out", &scratch.path("w.csv")],
        1,
        "3-dimensional",
    );
    let from_spiral = train_small(&scratch, "spiral-source", &["--source", "spiral", "--target", "moons"]);
    fails(
        &["logprob", "--model", &from_spiral, "--input", &points, "--out", &scratch.path("s.csv")],
        1,
        "no closed-form density",
    );
    fails(&["logprob", "--model", &model, "--input", &points, "--probes", "0", "--out", &out], 2, "--probes");
    scratch.assert_no_temp_files();
}

fn train_small(scratch: &Scratch, run: &str, extra: &[&str]) -> String {
    let out = scratch.path(run);
    let mut args = vec!["train", "--steps", "30", "--batch-size", "64", "--device", "cpu", "--out", &out];
    if !extra.iter().any(|a| *a == "--data" || *a == "--target") {
        args.extend(["--target", "spiral"]);
    }
    args.extend(extra);
    succeeds(&args);
    format!("{out}/model.safetensors")
}

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(path).expect("read").lines().map(str::to_owned).collect()
}

#[test]
fn data_writes_csv_and_npy() {
    let scratch = Scratch::new("data");
    let csv = scratch.path("points.csv");
    succeeds(&["data", "--name", "spiral", "--n", "50", "--seed", "3", "--out", &csv]);
    let rows = lines(&csv);
    assert_eq!(rows[0], "coord0,coord1");
    assert_eq!(rows.len(), 51);
    let npy = scratch.path("noise.npy");
    succeeds(&["data", "--name", "gaussian", "--dim", "4", "--n", "10", "--out", &npy]);
    assert!(std::fs::metadata(&npy).expect("written").len() > 10 * 4 * 4);
    let help = succeeds(&["data", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}

#[test]
fn train_reflow_sample_eval_and_plot_work_together() {
    let scratch = Scratch::new("pipeline");
    let model = train_small(&scratch, "fm", &["--time-sampling", "warp:0.8", "--recipe", "tuned"]);
    let losses = lines(&scratch.path("fm/losses.csv"));
    assert_eq!(losses.len(), 31);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.path("fm/run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(record["settings"]["training"]["steps"], 30);
    assert_eq!(record["settings"]["training"]["time_sampling"], "warp:0.8");
    // The recipe sets the rate and schedule; the record says which.
    assert_eq!(record["settings"]["recipe"], "tuned");
    assert_eq!(record["settings"]["training"]["lr"], 8e-3);
    assert_eq!(record["settings"]["training"]["lr_schedule"], "cosine");
    assert_eq!(record["settings"]["training"]["backend"], "auto");
    assert_eq!(record["device"], "cpu");

    let reflowed = scratch.path("rf");
    succeeds(&[
        "reflow",
        "--teacher",
        &model,
        "--pairs",
        "pool:256",
        "--steps",
        "5",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--out",
        &reflowed,
    ]);
    assert!(Path::new(&format!("{reflowed}/model.safetensors")).is_file());
    // Resuming a finished reflow trains nothing more and keeps its loss log.
    let before = std::fs::read(format!("{reflowed}/losses.csv")).expect("losses");
    let args = ["reflow", "--teacher", &model, "--pairs", "pool:256", "--steps", "5", "--batch-size", "32"];
    let resumed = succeeds(&[&args[..], &["--device", "cpu", "--resume", "--out", &reflowed]].concat());
    assert!(stderr(&resumed).contains("trained 0 steps"), "{}", stderr(&resumed));
    assert_eq!(std::fs::read(format!("{reflowed}/losses.csv")).expect("losses"), before);

    let samples = scratch.path("samples.csv");
    succeeds(&["sample", "--model", &model, "--n", "40", "--solver", "dopri5", "--out", &samples]);
    assert_eq!(lines(&samples).len(), 41);
    let back = scratch.path("back.npy");
    succeeds(&["sample", "--model", &model, "--reverse", "--input", &samples, "--out", &back]);
    let path = scratch.path("path.csv");
    succeeds(&[
        "sample",
        "--model",
        &model,
        "--n",
        "7",
        "--steps",
        "10",
        "--trajectory",
        "5",
        "--out",
        &path,
    ]);
    let rows = lines(&path);
    assert_eq!(rows[0], "t,particle,coord0,coord1");
    assert_eq!(rows.len(), 1 + 3 * 7, "start, step 5, step 10");

    let output = succeeds(&["eval", "--model", &model, "--n", "100", "--solver", "euler", "--steps", "4"]);
    let quality: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json on stdout");
    for key in ["w2", "w2_floor", "w2_ratio", "mmd", "energy", "straightness"] {
        assert!(quality[key].as_f64().is_some_and(f64::is_finite), "{key}: {quality}");
    }
    assert_eq!(quality["nfe"], 4);

    for name in ["flow.gif", "samples.png"] {
        let out = scratch.path(name);
        succeeds(&["plot", "--model", &model, "--n", "50", "--steps", "5", "--out", &out]);
        assert!(image::open(&out).is_ok(), "{name} decodes");
    }
    let points = scratch.path("points.png");
    succeeds(&["plot", "--input", &samples, "--out", &points]);
    scratch.assert_no_temp_files();
}

#[test]
fn stochastic_samplers_repeat_with_their_seed_and_refuse_models_without_a_score() {
    let scratch = Scratch::new("sde");
    let model = train_small(&scratch, "fm", &[]);
    let sample = |name: &str, extra: &[&str]| {
        let out = scratch.path(name);
        let args = ["sample", "--model", &model, "--n", "64", "--steps", "8", "--out", &out];
        succeeds(&[&args[..], extra].concat());
        std::fs::read(&out).expect("samples")
    };
    let first = sample("a.csv", &["--solver", "euler-maruyama", "--noise", "1.5", "--seed", "3"]);
    let again = sample("b.csv", &["--solver", "euler-maruyama", "--noise", "1.5", "--seed", "3"]);
    assert_eq!(first, again, "same seed");
    let other = sample("c.csv", &["--solver", "euler-maruyama", "--noise", "1.5", "--seed", "4"]);
    assert_ne!(first, other, "the seed draws the noise too");
    let euler = sample("euler.csv", &["--solver", "euler", "--seed", "3"]);
    assert_ne!(first, euler);
    for solver in ["euler-maruyama", "overshoot"] {
        let quiet = sample("quiet.csv", &["--solver", solver, "--noise", "0", "--seed", "3"]);
        assert_eq!(quiet, euler, "{solver} at noise 0");
    }
    // The pipeline test's trajectory, by a stochastic solver.
    let path = scratch.path("path.csv");
    let recorded = ["--n", "7", "--steps", "10", "--trajectory", "5", "--solver", "overshoot"];
    succeeds(&[&["sample", "--model", &model][..], &recorded, &["--out", &path]].concat());
    assert_eq!(lines(&path).len(), 1 + 3 * 7, "start, step 5, step 10");
    let gif = scratch.path("sde.gif");
    succeeds(&[
        "plot",
        "--model",
        &model,
        "--n",
        "50",
        "--steps",
        "5",
        "--solver",
        "euler-maruyama",
        "--out",
        &gif,
    ]);
    assert!(image::open(&gif).is_ok());
    let output =
        succeeds(&["eval", "--model", &model, "--n", "50", "--solver", "euler-maruyama", "--steps", "4"]);
    let quality: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json on stdout");
    assert_eq!(
        (&quality["solver"], &quality["noise"], &quality["nfe"]),
        (&"euler-maruyama".into(), &2.0.into(), &4.into())
    );

    let out = scratch.path("x.csv");
    let base = ["sample", "--model", &model, "--out", &out];
    fails(&[&base[..], &["--noise", "1"]].concat(), 2, "rk4 is deterministic");
    fails(&[&base[..], &["--solver", "overshoot", "--noise", "-1"]].concat(), 2, "--noise must be finite");
    fails(
        &[&base[..], &["--solver", "euler-maruyama", "--reverse", "--input", &path]].concat(),
        2,
        "the stochastic samplers run from the source to the data only",
    );
    fails(
        &[
            "logprob",
            "--model",
            &model,
            "--input",
            &out,
            "--solver",
            "euler-maruyama",
            "--out",
            &scratch.path("l.csv"),
        ],
        2,
        "logprob follows the probability-flow ODE",
    );
    let planned = train_small(&scratch, "ot", &["--coupling", "ot"]);
    let refused = ["sample", "--model", &planned, "--solver", "euler-maruyama", "--out", &out];
    fails(&refused, 2, "trained with --coupling ot, not independent pairs");
    let data = scratch.path("cloud.csv");
    succeeds(&["data", "--name", "moons", "--n", "200", "--out", &data]);
    let from_data = train_small(&scratch, "from-data", &["--source-data", &data]);
    fails(
        &["sample", "--model", &from_data, "--solver", "overshoot", "--out", &out],
        2,
        "not the standard Gaussian",
    );
    let reflowed = scratch.path("rf");
    succeeds(&[
        "reflow",
        "--teacher",
        &model,
        "--pairs",
        "pool:64",
        "--steps",
        "2",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--out",
        &reflowed,
    ]);
    let student = format!("{reflowed}/model.safetensors");
    fails(&["sample", "--model", &student, "--solver", "euler-maruyama", "--out", &out], 2, "reflow model");

    // [SF]2M: a flow and a score network on the bridge, sampled together as its SDE.
    let bridge = ["--path", "bridge", "--sigma", "1"];
    let flow = train_small(&scratch, "sb-flow", &bridge);
    let score = train_small(&scratch, "sb-score", &[&bridge[..], &["--score"]].concat());
    let header = std::fs::read(&score).expect("checkpoint");
    assert!(String::from_utf8_lossy(&header[..2048.min(header.len())]).contains(r#""objective":"score""#));
    let sde = scratch.path("sf2m.csv");
    let args = ["sample", "--model", &flow, "--score", &score, "--n", "30", "--steps", "10"];
    let output = succeeds(&[&args[..], &["--solver", "euler-maruyama", "--out", &sde]].concat());
    assert!(stderr(&output).contains("20 velocity evaluations"), "{}", stderr(&output));
    assert_eq!(lines(&sde).len(), 31);
    fails(
        &[&args[..], &["--out", &out]].concat(),
        2,
        "--score drives the SDE, which --solver euler-maruyama",
    );
    fails(&["sample", "--model", &score, "--out", &out], 2, "is a score network (train --score), not a flow");
    let swapped = ["sample", "--model", &flow, "--score", &flow, "--solver", "euler-maruyama", "--out", &out];
    fails(&swapped, 2, "is a flow, not a score network");
    let other = train_small(&scratch, "sb-other", &["--path", "bridge", "--sigma", "0.5", "--score"]);
    let mismatched =
        ["sample", "--model", &flow, "--score", &other, "--solver", "euler-maruyama", "--out", &out];
    fails(&mismatched, 1, "was trained on the path `bridge, σ = 0.5`, the flow on `bridge, σ = 1`");
    fails(
        &[
            "train",
            "--score",
            "--target",
            "moons",
            "--steps",
            "5",
            "--device",
            "cpu",
            "--out",
            &scratch.path("no-noise"),
        ],
        2,
        "the score objective needs a noisy path",
    );
    scratch.assert_no_temp_files();
}

#[test]
fn user_data_of_any_dimension_trains_and_evaluates() {
    let scratch = Scratch::new("userdata");
    let data = scratch.path("cloud.csv");
    succeeds(&["data", "--name", "gaussian", "--dim", "3", "--n", "200", "--out", &data]);
    let model = train_small(&scratch, "run", &["--data", &data]);
    let output = succeeds(&["eval", "--model", &model, "--data", &data, "--n", "50"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"w2\""));
    // Without --data, eval says it compares with the training points themselves.
    let output = succeeds(&["eval", "--model", &model, "--n", "50"]);
    let json = String::from_utf8_lossy(&output.stdout);
    assert!(
        json.contains("the points the model trained on") && json.contains("\"floor_draws\": 4"),
        "{json}"
    );
    fails(&["plot", "--model", &model, "--out", &scratch.path("x.png")], 1, "plots need 2-D data");
}

#[test]
fn bad_flags_are_usage_errors() {
    let scratch = Scratch::new("usage");
    let out = scratch.path("out.csv");
    fails(&["data", "--name", "spirall", "--out", &out], 2, "unknown dataset `spirall`");
    fails(&["data", "--name", "spiral", "--n", "0", "--out", &out], 2, "--n");
    fails(&["train", "--target", "spiral", "--steps", "0", "--out", &out], 2, "--steps");
    let model = train_small(&scratch, "tolerance", &[]);
    fails(
        &["sample", "--model", &model, "--solver", "dopri5", "--rtol", "1e-300", "--out", &out],
        2,
        "at least 1e-12",
    );
    fails(&["train", "--target", "spiral", "--batch-size=-3", "--out", &out], 2, "--batch-size");
    fails(
        &["train", "--target", "spiral", "--lr", "0", "--out", &out],
        2,
        "must be a positive finite number",
    );
    fails(
        &["train", "--target", "spiral", "--lr", "nan", "--out", &out],
        2,
        "must be a positive finite number",
    );
    fails(
        &["train", "--target", "spiral", "--time-sampling", "warp:2", "--out", &out],
        2,
        "outside [0, 1.5]",
    );
    fails(&["train", "--out", &out], 2, "--target NAME or --data FILE");
    fails(
        &["sample", "--model", "m.safetensors", "--solver", "rk5", "--out", &out],
        2,
        "unknown solver `rk5`",
    );
    fails(&["train", "--target", "spiral", "--device", "tpu", "--out", &out], 2, "unknown device `tpu`");
    fails(&["train", "--target", "spiral", "--recipe", "fast", "--out", &out], 2, "unknown recipe `fast`");
    fails(&["train", "--target", "spiral", "--backend", "cuda", "--out", &out], 2, "unknown backend `cuda`");
    fails(&["data", "--name", "spiral", "--out", &scratch.path("out.txt")], 2, "unsupported extension");
    fails(&["frobnicate"], 2, "frobnicate");
    assert!(!Path::new(&out).exists());
}

#[test]
fn bad_data_files_are_named_with_their_line_and_column() {
    let scratch = Scratch::new("baddata");
    let run = scratch.path("run");
    let cases = [
        ("cell.csv", "x,y\n1,2\n3,oops\n", "line 3, column 2: `oops` is not a number"),
        ("ragged.csv", "1,2\n3\n", "line 2 has 1 columns, expected 2"),
        ("nan.csv", "1,2\nnan,3\n", "line 2, column 1: NaN is not finite"),
        ("inf.csv", "1,2\n3,-inf\n", "line 2, column 2: -inf is not finite"),
        ("empty.csv", "x,y\n", "no data points"),
    ];
    for (name, text, needle) in cases {
        let path = scratch.write(name, text);
        fails(&["train", "--data", &path, "--out", &run], 1, needle);
    }
    let mut int_npy = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }";
    let padded = format!("{header:<117}\n");
    int_npy.extend((padded.len() as u16).to_le_bytes());
    int_npy.extend(padded.as_bytes());
    int_npy.extend([0u8; 16]);
    std::fs::write(scratch.0.join("ints.npy"), &int_npy).expect("write");
    fails(&["train", "--data", &scratch.path("ints.npy"), "--out", &run], 1, "float32 or float64");
    let rank3 = int_npy.clone();
    let text = String::from_utf8_lossy(&rank3).replace("'<i4'", "'<f4'").replace("(2, 2)", "(1, 2, 2)");
    std::fs::write(scratch.0.join("cube.npy"), text.as_bytes()).expect("write");
    fails(&["train", "--data", &scratch.path("cube.npy"), "--out", &run], 1, "expected a 2-D array");
    assert!(!Path::new(&format!("{run}/model.safetensors")).exists());
}

#[test]
fn bad_checkpoints_outputs_and_devices_are_runtime_errors() {
    let scratch = Scratch::new("runtime");
    let model = train_small(&scratch, "fm", &[]);
    let out = scratch.path("out.csv");

    fails(&["sample", "--model", &scratch.path("none.safetensors"), "--out", &out], 1, "none.safetensors");
    let bytes = std::fs::read(&model).expect("model");
    std::fs::write(scratch.0.join("cut.safetensors"), &bytes[..bytes.len() / 3]).expect("write");
    fails(
        &["sample", "--model", &scratch.path("cut.safetensors"), "--out", &out],
        1,
        "not a flowmatch checkpoint",
    );
    let text = scratch.write("text.safetensors", "hello");
    fails(&["eval", "--model", &text], 1, "not a flowmatch checkpoint");

    let cube = scratch.path("cube.csv");
    succeeds(&["data", "--name", "gaussian", "--dim", "3", "--n", "5", "--out", &cube]);
    fails(
        &["sample", "--model", &model, "--input", &cube, "--out", &out],
        1,
        "is 3-dimensional but the model is 2-dimensional",
    );
    fails(
        &[
            "train",
            "--target",
            "spiral",
            "--hidden",
            "32",
            "--resume",
            "--steps",
            "40",
            "--out",
            &scratch.path("fm"),
        ],
        1,
        "checkpoint is for dim 2, 3 hidden layers of 64",
    );

    fails(
        &["data", "--name", "spiral", "--out", "/nonexistent/dir/points.csv"],
        1,
        "/nonexistent/dir/points.csv",
    );
    std::fs::create_dir_all(scratch.0.join("taken.csv")).expect("dir");
    fails(&["sample", "--model", &model, "--out", &scratch.path("taken.csv")], 1, "is a directory");
    std::fs::write(scratch.0.join("file-not-dir"), "x").expect("write");
    fails(&["train", "--target", "spiral", "--out", &scratch.path("file-not-dir")], 1, "not a directory");
    if tch::Cuda::device_count() == 0 {
        fails(
            &["train", "--target", "spiral", "--device", "cuda", "--out", &scratch.path("gpu")],
            1,
            "no CUDA device",
        );
        assert!(!scratch.0.join("gpu").exists());
    }
    assert!(!Path::new(&out).exists());
    scratch.assert_no_temp_files();
}

#[test]
fn ctrl_c_leaves_a_loadable_checkpoint_that_resumes() {
    stop_by_signal_leaves_a_loadable_checkpoint_that_resumes("INT");
}

/// A signal while a command other than training writes its output ends it with one line and
/// leaves neither the output nor its temporary file; a file-size limit is an error, not a kill.
#[test]
fn signals_and_file_size_limits_leave_no_half_written_output() {
    let scratch = Scratch::new("signals");
    let binary = env!("CARGO_BIN_EXE_flowmatch");
    // 20 million points: seconds of drawing and writing, so the signal lands in one or the other.
    let out = scratch.path("big.csv");
    let mut child = Command::new(binary)
        .args(["data", "--name", "gaussian", "--n", "20000000", "--out", &out])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill").success());
    let _ = child.stdin.take();
    let output = child.wait_with_output().expect("ends");
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("interrupted") && message.trim_end().lines().count() == 1, "{message}");
    assert!(!Path::new(&out).exists(), "a half-written output");
    scratch.assert_no_temp_files();
    // `ulimit -f`: the write fails like a full disk (one line, exit 1), not SIGXFSZ's kill.
    let limited = scratch.path("limited.csv");
    let script = format!("ulimit -f 64; exec '{binary}' data --name spiral --n 200000 --out '{limited}'");
    let output = Command::new("sh").args(["-c", &script]).output().expect("sh runs");
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.starts_with("flowmatch: ") && message.contains("too large"), "{message}");
    assert!(!Path::new(&limited).exists());
    scratch.assert_no_temp_files();
}

/// A step that cannot end soon (a transport plan of 8 000 points) is not waited for twice: the
/// first SIGTERM asks for a stop at the next checkpoint, the second ends the run at once.
#[test]
fn a_second_signal_does_not_wait_for_a_long_step() {
    let scratch = Scratch::new("second-signal");
    let run = scratch.path("run");
    let args =
        ["train", "--target", "moons", "--coupling", "sinkhorn", "--batch-size", "8000", "--steps", "5"];
    let child = Command::new(env!("CARGO_BIN_EXE_flowmatch"))
        .args(args)
        .args(["--device", "cpu", "--out", &run])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    // Well inside the first plan (tens of seconds of Sinkhorn iterations on 64 million costs).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let pid = child.id().to_string();
    let kill = || assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    kill();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = std::time::Instant::now();
    kill();
    let output = child.wait_with_output().expect("exits");
    let message = stderr(&output);
    assert!(second.elapsed() < std::time::Duration::from_secs(5), "waited {:?}: {message}", second.elapsed());
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("second signal"), "{message}");
    scratch.assert_no_temp_files();
}

#[test]
fn sigterm_and_sighup_stop_a_run_as_ctrl_c_does() {
    // What a scheduler sends, and what a closed terminal sends.
    stop_by_signal_leaves_a_loadable_checkpoint_that_resumes("TERM");
    stop_by_signal_leaves_a_loadable_checkpoint_that_resumes("HUP");
}

fn stop_by_signal_leaves_a_loadable_checkpoint_that_resumes(signal: &str) {
    let scratch = Scratch::new(&format!("interrupt-{signal}"));
    let run = scratch.path("run");
    let child = Command::new(env!("CARGO_BIN_EXE_flowmatch"))
        .args([
            "train",
            "--target",
            "spiral",
            "--steps",
            "1000000",
            "--batch-size",
            "32",
            "--checkpoint-every",
            "50",
        ])
        .args(["--device", "cpu", "--out", &run])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    // Wait until training is under way (its first checkpoint is written, so the Ctrl-C
    // handler is installed), however slow the machine, then interrupt as a terminal would.
    let first_checkpoint = Path::new(&run).join("losses.csv");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !first_checkpoint.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(first_checkpoint.exists(), "training never wrote its first checkpoint");
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let output = child.wait_with_output().expect("exits");
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("interrupted at step") && message.contains("--resume"), "{message}");
    let steps = lines(&format!("{run}/losses.csv")).len() - 1;
    assert!(steps > 0);

    let model = format!("{run}/model.safetensors");
    succeeds(&["sample", "--model", &model, "--n", "5", "--out", &scratch.path("s.csv")]);
    let target = (steps + 10).to_string();
    let resume = [
        "train",
        "--target",
        "spiral",
        "--steps",
        &target,
        "--batch-size",
        "32",
        "--resume",
        "--device",
        "cpu",
        "--out",
        &run,
    ];
    succeeds(&resume);
    assert_eq!(lines(&format!("{run}/losses.csv")).len() - 1, steps + 10);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{run}/run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(record["resumed_from_step"], steps);
}

#[test]
fn quick_reproduce_writes_every_figure_at_its_size() {
    let scratch = Scratch::new("reproduce");
    let out = scratch.path("figures");
    succeeds(&["reproduce", "--quick", "--device", "cpu", "--out", &out]);
    let expected_frames = [
        ("06_flow_matching.gif", 101),
        ("07_time_warp.gif", 31),
        ("10_reflow.gif", 101),
        ("11_combined.gif", 101),
    ];
    let square = (426, 448);
    let expected_sizes = [
        ("01_source_target.png", (2 * square.0, square.1)),
        ("02_initial_velocities.png", (square.0 + 90, square.1)),
        ("03_loss_flow_matching.png", (640, 420)),
        ("04_untrained_euler100.png", square),
        ("05_flow_matching_euler100.png", square),
        ("08_flow_matching_rk4_20.png", square),
        ("09_loss_reflow.png", (640, 420)),
        ("12_trajectories.png", (2 * square.0, square.1)),
        ("13_quality_vs_steps.png", (640, 420)),
        ("15_ode_sde_paths.png", (2 * square.0, square.1)),
    ];
    for (name, size) in expected_sizes {
        let image = image::open(format!("{out}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((image.width(), image.height()), size, "{name}");
    }
    for (name, frames) in expected_frames {
        let file = std::fs::File::open(format!("{out}/{name}")).expect("gif");
        let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(file)).expect("gif header");
        let count = image::AnimationDecoder::into_frames(decoder).count();
        assert_eq!(count, frames, "{name}");
    }
    // Every figure of the one list is there, and the report links each.
    let report = std::fs::read_to_string(format!("{out}/report.md")).expect("report");
    for figure in &flowmatch::experiments::reproduce::figures::FIGURES {
        assert!(Path::new(&format!("{out}/{}", figure.file)).is_file(), "{} missing", figure.file);
        assert!(report.contains(&format!("]({})", figure.file)), "report lacks {}", figure.file);
    }
    for needle in ["W2 / floor", "straightness", "reflow (pool)", "13_quality_vs_steps.png"] {
        assert!(report.contains(needle), "report lacks {needle}");
    }
    scratch.assert_no_temp_files();
}

#[test]
fn quick_c2ot_writes_its_table_and_figure_and_ot_beats_independent_in_one_step() {
    let scratch = Scratch::new("c2ot");
    let out = scratch.path("c2ot");
    succeeds(&["reproduce", "--experiment", "c2ot", "--quick", "--device", "cpu", "--out", &out]);
    let table = std::fs::read_to_string(format!("{out}/c2ot.md")).expect("table");
    // The published cells stand beside ours, and every method has its row.
    for needle in ["| 6.232 ± 0.186 |", "| 0.072 ± 0.025 |", "W2²", "(c2ot.png)"] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
    let one_step = |method: &str| -> f64 {
        let row = table.lines().find(|l| l.starts_with(&format!("| {method} |"))).expect("row");
        let cell = row.split('|').nth(3).expect("Euler cell");
        cell.split('±').next().expect("mean").trim().parse().expect("number")
    };
    // Independent pairs send one Euler step towards the target's mean; OT's straight paths land on it.
    let (independent, ot) = (one_step("flow matching (independent)"), one_step("minibatch OT"));
    assert!(ot < 0.2 * independent, "OT {ot} against independent {independent}");
    assert!(one_step("reflow of flow matching") < 0.2 * independent);
    let image = image::open(format!("{out}/c2ot.png")).expect("figure");
    assert_eq!((image.width(), image.height()), (2 * 426, 5 * 448), "two panels per method");
    scratch.assert_no_temp_files();
}

/// Standard output that cannot take what a command prints (a full disk, a closed pipe) ends it
/// with one line and exit status 1, no panic; so does a FIFO given as the checkpoint; a native
/// kernel the CPU lacks does not stop a libtorch run.
#[test]
fn unwritable_output_a_fifo_checkpoint_and_a_foreign_kernel_fail_cleanly_or_not_at_all() {
    let binary = env!("CARGO_BIN_EXE_flowmatch");
    let run = |stdout: std::process::Stdio, args: &[&str]| {
        Command::new(binary).args(args).stdout(stdout).env_remove("RUST_LOG").output().expect("runs")
    };
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let output = run(full.into(), &["devices"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.starts_with("flowmatch: ") && message.contains("No space left"), "{message}");
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    // A reader that leaves at once: the write meets a broken pipe.
    let mut child = Command::new(binary)
        .args(["devices"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("ends");
    let message = stderr(&output);
    // (The reader is gone long before the command, which loads libtorch first, prints.)
    assert!(!message.contains("panicked"), "{message}");
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("broken pipe") && message.trim_end().lines().count() == 1, "{message}");
    // A FIFO as the checkpoint is refused before it is opened (opening one would block).
    let scratch = Scratch::new("fifo");
    let fifo = scratch.path("model.safetensors");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    fails(&["sample", "--model", &fifo, "--out", &scratch.path("s.csv")], 1, "not a regular file");
    // A native kernel this CPU lacks does not stop a run on libtorch, which uses none.
    let model = train_small(&scratch, "small", &["--backend", "libtorch"]);
    let output = Command::new(binary)
        .args([
            "sample",
            "--model",
            &model,
            "--n",
            "10",
            "--backend",
            "libtorch",
            "--out",
            &scratch.path("n.csv"),
        ])
        .env("FLOWMATCH_KERNEL", if cfg!(target_arch = "x86_64") { "neon" } else { "avx2" })
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    // An output that is one of the inputs (itself, or through a link) is refused, the input kept.
    let points = scratch.path("p.csv");
    succeeds(&["data", "--name", "spiral", "--n", "50", "--out", &points]);
    let kept = std::fs::read(&points).expect("points");
    let linked = scratch.path("link.csv");
    std::os::unix::fs::symlink(&points, &linked).expect("a link");
    for out in [&points, &linked] {
        fails(&["logprob", "--model", &model, "--input", &points, "--out", out], 2, "is the input");
        fails(
            &["sample", "--model", &model, "--input", &points, "--reverse", "--out", out],
            2,
            "is the input",
        );
    }
    assert_eq!(std::fs::read(&points).expect("points"), kept, "the input was changed");
    // A newline or a terminal escape in a file name is shown escaped: the message stays one line.
    let odd = scratch.path("a\nb\u{1b}[31m.txt");
    fails(&["data", "--name", "spiral", "--out", &odd], 2, "a\\nb\\u{1b}[31m.txt");
    // `help --help` is help, as `help` and `--help` are.
    let help = succeeds(&["help", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: flowmatch"), "{help:?}");
    // With somewhere to write, `devices` says what it found, GPUs or none.
    let listed = succeeds(&["devices"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("cuda"), "{listed:?}");
}

#[test]
fn quick_torchcfm_benchmark_writes_every_row_and_ot_straightens_the_paths() {
    let scratch = Scratch::new("torchcfm-2d");
    let out = scratch.path("bench");
    succeeds(&["reproduce", "--experiment", "torchcfm-2d", "--quick", "--device", "cpu", "--out", &out]);
    let table = std::fs::read_to_string(format!("{out}/torchcfm-2d.md")).expect("table");
    for needle in
        ["/ 0.303", "/ 1.557", "| FM (σ_min = 0.1) | ", "not defined", "(torchcfm-2d.png)", "*floor"]
    {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
    assert!(!table.contains("Stopped part-way"), "{table}");
    // NPE of N → S-curve: OT pairs make the paths far closer to the transport's energy.
    let npe = |method: &str| -> f64 {
        let npe_table = table.split("## NPE").nth(1).expect("NPE table");
        let row = npe_table.lines().find(|l| l.starts_with(&format!("| {method} |"))).expect("row");
        let cell = row.split('|').nth(4).expect("N → S-curve cell");
        cell.trim_matches(|c| c == ' ' || c == '*')
            .split('±')
            .next()
            .expect("mean")
            .trim()
            .parse()
            .expect("number")
    };
    let (independent, ot) = (npe("ours: line, σ = 0"), npe("ours: OT line, σ = 0"));
    assert!(ot < 0.7 * independent, "OT NPE {ot} against independent {independent}");
    // A second run measures nothing again: every model and its scores are kept, the cells the same.
    let scores = |text: &str| {
        text.split("## Protocol").next().and_then(|t| t.split("## W2").nth(1)).map(str::to_owned)
    };
    succeeds(&["reproduce", "--experiment", "torchcfm-2d", "--quick", "--device", "cpu", "--out", &out]);
    let again = std::fs::read_to_string(format!("{out}/torchcfm-2d.md")).expect("table");
    assert_eq!(scores(&again), scores(&table));
    scratch.assert_no_temp_files();
}

#[test]
fn quick_c2ot_conditional_writes_its_table_and_c2ot_beats_ot_under_conditions() {
    let scratch = Scratch::new("c2ot-conditional");
    let out = scratch.path("c2ot");
    succeeds(&["reproduce", "--experiment", "c2ot-conditional", "--quick", "--device", "cpu", "--out", &out]);
    let table = std::fs::read_to_string(format!("{out}/c2ot-conditional.md")).expect("table");
    for needle in ["| 0.048 ± 0.010 |", "| 8.276 ± 6.510 |", "(c2ot-conditional.png)"] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
    let adaptive = |condition: &str, method: &str| -> f64 {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {condition} | {method} |")))
            .unwrap_or_else(|| panic!("no row {condition} / {method}:\n{table}"));
        let cell = row.split('|').nth(6).expect("adaptive cell");
        cell.split('±').next().expect("mean").trim().parse().expect("number")
    };
    // Minibatch OT pairs sources with targets of other conditions, so its conditional
    // model learns the wrong map; C2OT keeps pairs within conditions (even at 300 steps).
    for condition in ["discrete (moon)", "continuous (target x)"] {
        let (ot, c2ot) = (adaptive(condition, "minibatch OT"), adaptive(condition, "C2OT"));
        assert!(c2ot < 0.5 * ot, "{condition}: C2OT {c2ot} against OT {ot}");
    }
    let image = image::open(format!("{out}/c2ot-conditional.png")).expect("figure");
    assert_eq!((image.width(), image.height()), (4 * 426, 3 * 448), "four panels per method");
    scratch.assert_no_temp_files();
}

#[test]
fn conditional_models_train_sample_and_plot_and_bad_conditions_are_named() {
    let scratch = Scratch::new("conditional");
    let model = train_small(&scratch, "labels", &["--target", "8gaussians", "--condition", "label"]);
    let header = std::fs::read(&model).expect("checkpoint");
    let header = String::from_utf8_lossy(&header[..4096.min(header.len())]).into_owned();
    assert!(header.contains(r#"\"condition\":{\"classes\":8,\"values\":0}"#), "{header}");
    assert!(header.contains(r#""conditions":"[\"label\"]""#), "{header}");
    assert!(header.contains(r#""condition_dropout":"0.3""#), "{header}");
    // Without condition dropout the null condition never trained: what needs it is refused.
    let no_null = train_small(
        &scratch,
        "no-null",
        &["--target", "8gaussians", "--condition", "label", "--condition-dropout", "0"],
    );
    let out = scratch.path("x.csv");
    fails(&["sample", "--model", &no_null, "--out", &out], 2, "never trained");
    fails(
        &["sample", "--model", &no_null, "--condition", "1", "--guidance", "2", "--out", &out],
        2,
        "never trained",
    );
    succeeds(&["sample", "--model", &no_null, "--condition", "1", "--n", "20", "--out", &out]);
    let out = scratch.path("class3.csv");
    succeeds(&[
        "sample",
        "--model",
        &model,
        "--condition",
        "3",
        "--guidance",
        "2",
        "--n",
        "50",
        "--out",
        &out,
    ]);
    assert_eq!(lines(&out).len(), 51);
    // The stochastic samplers take conditions and guidance as the ODE solvers do.
    let noisy = scratch.path("class3-sde.csv");
    let sde = ["--solver", "euler-maruyama", "--noise", "1.5", "--n", "50", "--out", &noisy];
    succeeds(&[&["sample", "--model", &model, "--condition", "3", "--guidance", "2"][..], &sde].concat());
    assert_eq!(lines(&noisy).len(), 51);
    let panels = scratch.path("classes.png");
    succeeds(&["plot", "--model", &model, "--n", "100", "--out", &panels]);
    let image = image::open(&panels).expect("figure");
    assert_eq!((image.width(), image.height()), (4 * 426, 2 * 448), "one panel per class, four a row");

    fails(
        &["sample", "--model", &model, "--condition", "8", "--out", &out],
        2,
        "label 8 is not one of 0 … 7",
    );
    fails(&["sample", "--model", &model, "--condition", "nan", "--out", &out], 2, "label NaN");
    fails(&["sample", "--model", &model, "--condition", "1,2", "--out", &out], 2, "2 condition values given");
    fails(&["sample", "--model", &model, "--guidance", "2", "--out", &out], 2, "--condition");
    let plain = train_small(&scratch, "plain", &[]);
    fails(
        &["sample", "--model", &plain, "--condition", "1", "--out", &out],
        2,
        "this model is unconditional",
    );
    let run = scratch.path("refused");
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--steps", "5", "--device", "cpu", "--out", &run];
        args.extend(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let refused = |extra: &[&str], needle: &str| {
        let args = train(extra);
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2, needle);
    };
    refused(&["--target", "spiral", "--condition", "label"], "`spiral` has no natural label");
    refused(&["--target", "moons", "--condition", "coord7"], "coord7 is not a coordinate");
    refused(&["--target", "moons", "--coupling", "c2ot"], "needs conditions on the target");
    refused(&["--target", "moons", "--condition", "label", "--condition-dropout", "1"], "must be a fraction");
    let good = scratch.write("good.csv", "x,y,kind\n1,2,0\n3,4,1\n5,6,1\n");
    refused(&["--data", &good, "--condition", "colour"], "no column `colour` (columns: x, y, kind)");
    let data = scratch.write("labelled.csv", "x,y,kind\n1,2,0\n3,4,1\n5,6,nan\n");
    fails(
        &train(&["--data", &data, "--condition", "kind:label"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        1,
        "line 4, column 3: NaN is not finite",
    );
    let from_csv =
        train_small(&scratch, "csv", &["--data", &good, "--condition", "kind:label", "--coupling", "c2ot"]);
    fails(
        &["sample", "--model", &from_csv, "--condition", "2", "--out", &out],
        2,
        "label 2 is not one of 0 … 1",
    );
    // eval finds the recorded data again without its condition column (#31).
    succeeds(&["eval", "--model", &from_csv, "--n", "20"]);
    fails(
        &["reflow", "--teacher", &model, "--steps", "5", "--out", &scratch.path("reflow")],
        2,
        "reflow distils unconditional models only",
    );
    scratch.assert_no_temp_files();
}

/// `train` and `sample` on `device` (the CLI's own device handling).
fn trains_and_samples_on(device: tch::Device) {
    let name = flow_model::device_name(device);
    let scratch = Scratch::new(&format!("device-{name}"));
    let out = scratch.path("run");
    succeeds(&[
        "train",
        "--target",
        "spiral",
        "--steps",
        "30",
        "--batch-size",
        "64",
        "--device",
        &name,
        "--out",
        &out,
    ]);
    let model = format!("{out}/model.safetensors");
    let samples = scratch.path("samples.csv");
    succeeds(&["sample", "--model", &model, "--n", "100", "--device", &name, "--out", &samples]);
    assert_eq!(lines(&samples).len(), 101, "a header and 100 points");
    scratch.assert_no_temp_files();
}
flow_model::test_device!(trains_and_samples_on);

#[test]
fn sizes_too_large_for_this_machine_are_refused_before_allocating() {
    let scratch = Scratch::new("huge");
    let out = scratch.path("out.csv");
    let run = scratch.path("run");
    fails(&["data", "--name", "spiral", "--n", "1000000000000", "--out", &out], 1, "needs");
    fails(&["train", "--target", "spiral", "--batch-size", "1000000000000", "--out", &run], 1, "a batch of");
    fails(&["train", "--target", "spiral", "--steps", "1000000000000", "--out", &run], 1, "a loss log of");
    assert!(!Path::new(&run).exists(), "a refused run leaves no directory");
    let model = train_small(&scratch, "small", &[]);
    fails(
        &["sample", "--model", &model, "--n", "10000000000", "--out", &out],
        1,
        "sampling 10000000000 points",
    );
    let gif = scratch.path("flow.gif");
    fails(
        &["plot", "--model", &model, "--steps", "100000", "--out", &gif],
        1,
        "an animation of 100001 frames",
    );
    // Under `ulimit -v` the check counts what the address-space limit leaves, not the free memory.
    let script = format!(
        "ulimit -v 4000000; exec '{}' sample --model '{model}' --n 100000000 --out '{out}'",
        env!("CARGO_BIN_EXE_flowmatch")
    );
    let limited = Command::new("sh").args(["-c", &script]).output().expect("sh runs");
    let message = stderr(&limited);
    assert_eq!(limited.status.code(), Some(1), "{message}");
    assert!(message.contains("sampling 100000000 points") && message.contains("needs"), "{message}");
    // eval's and plot's --n, and a trajectory's recorded states, go through the same check.
    fails(&["eval", "--model", &model, "--n", "100000000000"], 1, "evaluating on 100000000000 points");
    let png = scratch.path("flow.png");
    fails(
        &["plot", "--model", &model, "--n", "100000000000", "--out", &png],
        1,
        "plotting 100000000000 points",
    );
    fails(
        &[
            "sample",
            "--model",
            &model,
            "--n",
            "1000000",
            "--steps",
            "5000",
            "--trajectory",
            "1",
            "--out",
            &out,
        ],
        1,
        "a trajectory of 1000000 points",
    );
    fails(&["train", "--target", "spiral", "--hidden", "10000000", "--out", &run], 1, "a network of");
    fails(
        &["train", "--target", "spiral", "--layers", "1000000000", "--hidden", "1000", "--out", &run],
        1,
        "a network of",
    );
    fails(
        &["train", "--target", "spiral", "--time-embedding", "sinusoidal:128", "--out", &run],
        2,
        "at most 127 frequencies",
    );
    // A header that claims 10^11 rows of a file that holds a few bytes.
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 2), }";
    let padded = format!("{header:<117}\n");
    npy.extend((padded.len() as u16).to_le_bytes());
    npy.extend(padded.as_bytes());
    npy.extend([0u8; 16]);
    std::fs::write(scratch.0.join("claims.npy"), &npy).expect("write");
    let claims = scratch.path("claims.npy");
    fails(
        &["train", "--data", &claims, "--steps", "5", "--out", &run],
        1,
        "its header claims 100000000000 × 2 values",
    );
    assert!(!Path::new(&out).exists());
    scratch.assert_no_temp_files();
}

#[test]
fn options_that_cannot_work_are_refused() {
    let scratch = Scratch::new("cannot");
    let run = scratch.path("run");
    fails(
        &["train", "--target", "spiral", "--threads", "100000", "--out", &run],
        2,
        "--threads 100000 is more than",
    );
    let model = train_small(&scratch, "teacher", &[]);
    fails(&["eval", "--model", &model, "--n", "1"], 2, "too few points");
    // A reflow into the teacher's own directory would overwrite the teacher.
    let teacher_dir = scratch.path("teacher");
    fails(&["reflow", "--teacher", &model, "--steps", "5", "--out", &teacher_dir], 2, "lies in --out");
    // A fresh run that fails before its first checkpoint leaves no directory (and no lock) behind.
    fails(
        &["train", "--target", "spiral", "--lr", "1e30", "--steps", "300", "--out", &run],
        1,
        "nothing was saved",
    );
    assert!(!Path::new(&run).exists(), "a failed fresh run left {run}");
    // Options that would do nothing are refused rather than ignored.
    fails(&["train", "--target", "spiral", "--ot-batch", "64", "--out", &run], 2, "plans nothing");
    fails(
        &["train", "--target", "spiral", "--condition-dropout", "0.2", "--out", &run],
        2,
        "give --condition",
    );
    // A plan too large for this machine is refused before anything is drawn.
    for coupling in ["ot", "sinkhorn"] {
        let args = [
            "train",
            "--target",
            "spiral",
            "--coupling",
            coupling,
            "--ot-batch",
            "1000000000",
            "--out",
            &run,
        ];
        fails(&args, 1, "plan of 1000000000 points");
    }
    assert!(!Path::new(&run).exists(), "a refused run leaves no directory");
    scratch.assert_no_temp_files();
}

#[test]
fn a_second_writer_of_one_run_directory_is_refused() {
    let scratch = Scratch::new("two-writers");
    let run = scratch.path("run");
    let train = |steps: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowmatch"));
        command.args(["train", "--target", "spiral", "--steps", steps, "--batch-size", "32"]);
        command.args(["--checkpoint-every", "50", "--device", "cpu", "--out", &run]);
        command
    };
    let mut first = train("1000000").stderr(std::process::Stdio::null()).spawn().expect("starts");
    let under_way = Path::new(&run).join("losses.csv");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !under_way.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second = train("10").arg("--force").output().expect("runs");
    let _ = first.kill();
    let _ = first.wait();
    let message = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{message}");
    assert!(message.contains(&format!("in use by process {}", first.id())), "{message}");
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
}

#[test]
fn sigkill_at_random_times_always_leaves_a_run_that_resumes() {
    // Killed at seeded random moments (checkpoints every 20 steps, so many kills
    // land during a write), `--resume` must always finish the run.
    let scratch = Scratch::new("sigkill");
    let mut state = 0x9e37_79b9_u64;
    for round in 0..4 {
        let run = scratch.path(&format!("run{round}"));
        let args = ["train", "--target", "spiral", "--steps", "1000", "--batch-size", "64"];
        let rest = ["--checkpoint-every", "20", "--device", "cpu", "--out", &run];
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowmatch"))
            .args(args)
            .args(rest)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starts");
        let under_way = Path::new(&run).join("train-state.safetensors");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !under_way.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        std::thread::sleep(std::time::Duration::from_millis((state >> 33) % 300));
        let _ = child.kill();
        let _ = child.wait();
        let resumed = flowmatch(&[&args[..], &rest[..], &["--resume"]].concat());
        assert!(resumed.status.success(), "round {round}: {}", stderr(&resumed));
        assert_eq!(lines(&format!("{run}/losses.csv")).len() - 1, 1000, "round {round}");
    }
    scratch.assert_no_temp_files();
}

#[test]
fn resume_refuses_changed_settings_and_the_other_command() {
    let scratch = Scratch::new("resume-settings");
    let model = train_small(&scratch, "run", &[]);
    let run = scratch.path("run");
    let resume = |extra: &[&str]| {
        let mut args = vec!["train", "--target", "spiral", "--steps", "40", "--device", "cpu"];
        args.extend(["--resume", "--out", &run]);
        if !extra.contains(&"--batch-size") {
            args.extend(["--batch-size", "64"]);
        }
        args.extend(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let cases: [(&[&str], &str); 4] = [
        (&["--seed", "1"], "different training.seed (0 before, 1 now)"),
        (&["--lr", "0.01"], "different training.lr"),
        (&["--batch-size", "128"], "different training.batch_size (64 before, 128 now)"),
        (&["--time-sampling", "warp"], "different training.time_sampling"),
    ];
    for (extra, needle) in cases {
        let args = resume(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, 1, needle);
    }
    let reflow_out = scratch.path("run");
    let teacher = scratch.path("teacher.safetensors");
    std::fs::copy(&model, &teacher).expect("copy");
    fails(
        &["reflow", "--teacher", &teacher, "--steps", "5", "--resume", "--out", &reflow_out],
        1,
        "holds a `train` run",
    );
    // And the reverse: a reflow run is not continued by `train`.
    let reflowed = scratch.path("reflowed");
    let reflow =
        ["reflow", "--teacher", &teacher, "--pairs", "pool:256", "--steps", "5", "--batch-size", "32"];
    succeeds(&[&reflow[..], &["--device", "cpu", "--out", &reflowed]].concat());
    let train = ["train", "--target", "spiral", "--steps", "10", "--resume", "--out", &reflowed];
    fails(&train, 1, "holds a `reflow` run; resume it with `flowmatch reflow --resume`");
    // Without run.json (deleted, or never written after a SIGKILL) the checkpoint's header still
    // says what the run learned: another target or path is refused.
    let copy = scratch.path("copy");
    std::fs::create_dir_all(&copy).expect("copy");
    for file in ["model.safetensors", "train-state.safetensors", "losses.csv"] {
        std::fs::copy(scratch.0.join("run").join(file), scratch.0.join("copy").join(file)).expect("copy");
    }
    let other_target =
        ["train", "--target", "moons", "--steps", "40", "--batch-size", "64", "--resume", "--out", &copy];
    fails(&other_target, 1, "trained with target spiral, not moons");
    let other_path =
        ["train", "--target", "spiral", "--path", "cosine", "--steps", "40", "--resume", "--out", &copy];
    fails(&other_path, 1, "trained with path linear, not cosine");
    // A data file whose contents changed since the run began is not trained on silently.
    let data = scratch.path("points.csv");
    succeeds(&["data", "--name", "moons", "--n", "300", "--out", &data]);
    train_small(&scratch, "on-data", &["--data", &data]);
    succeeds(&["data", "--name", "spiral", "--n", "300", "--out", &data]);
    let on_data = scratch.path("on-data");
    let changed =
        ["train", "--data", &data, "--steps", "40", "--batch-size", "64", "--resume", "--out", &on_data];
    fails(&changed, 1, "different data_files");
    // Shorter than the steps already taken: refused, the run and its record as they were.
    let record = std::fs::read(scratch.path("run/run.json")).expect("run record");
    let shorter =
        ["train", "--target", "spiral", "--steps", "10", "--batch-size", "64", "--resume", "--out", &run];
    fails(&shorter, 2, "has taken 30 steps already");
    assert_eq!(std::fs::read(scratch.path("run/run.json")).expect("run record"), record);
    // Longer, with the same settings: allowed.
    let args = resume(&[]);
    succeeds(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn points_that_overflow_are_an_error_not_a_nan_file() {
    // One Euler step backward from the edge of f32's range: x − v overflows for
    // the points whose velocity points outward.
    let scratch = Scratch::new("overflow");
    let model = train_small(&scratch, "run", &[]);
    let input =
        scratch.write("far.csv", "x0,x1\n3.4e38,3.4e38\n-3.4e38,-3.4e38\n3.4e38,-3.4e38\n-3.4e38,3.4e38\n");
    let out = scratch.path("latents.csv");
    let args = ["sample", "--model", &model, "--reverse", "--solver", "euler", "--steps", "1"];
    fails(
        &[&args[..], &["--input", &input, "--out", &out]].concat(),
        1,
        "of 4 points became NaN or infinite",
    );
    assert!(!Path::new(&out).exists());
}

#[test]
fn a_huge_pool_is_refused_and_ctrl_c_stops_a_large_one() {
    let scratch = Scratch::new("pool");
    let model = train_small(&scratch, "teacher", &[]);
    let out = scratch.path("straight");
    fails(
        &["reflow", "--teacher", &model, "--pairs", "pool:1000000000000", "--out", &out],
        1,
        "a pool of 1000000000000 teacher pairs needs",
    );
    let child = Command::new(env!("CARGO_BIN_EXE_flowmatch"))
        .args(["reflow", "--teacher", &model, "--pairs", "pool:20000000", "--device", "cpu", "--out", &out])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let clock = std::time::Instant::now();
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let output = child.wait_with_output().expect("exits");
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("stopped while the teacher pool was generated"), "{message}");
    assert!(clock.elapsed() < std::time::Duration::from_secs(30), "took {:?} to stop", clock.elapsed());
}

#[test]
fn a_fresh_run_does_not_replace_an_old_one_and_resume_needs_one() {
    let scratch = Scratch::new("replace");
    train_small(&scratch, "run", &[]);
    let run = scratch.path("run");
    let again = [
        "train",
        "--target",
        "spiral",
        "--steps",
        "5",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--out",
        &run,
    ];
    fails(&again, 2, "holds a run: --resume continues it, --force replaces it");
    succeeds(&[&again[..], &["--force"]].concat());
    let missing = scratch.path("missing");
    let resume = ["train", "--target", "spiral", "--steps", "5", "--resume", "--out", &missing];
    fails(&resume, 1, "no run here to resume");
    assert!(!Path::new(&missing).exists(), "a failed resume creates nothing");
}

/// A small tmpfs mounted over a scratch directory, unmounted when dropped; `None`
/// (with a note) where this process may not mount (not root, no CAP_SYS_ADMIN).
struct TinyFs(PathBuf);

impl TinyFs {
    fn mount(dir: &Path, size: &str) -> Option<TinyFs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .is_ok_and(|out| out.status.success());
        if !mounted {
            eprintln!("cannot mount a tmpfs here: the full-disk and read-only cases are skipped");
            return None;
        }
        Some(TinyFs(dir.to_owned()))
    }

    fn read_only(&self) {
        let status = Command::new("mount").args(["-o", "remount,ro"]).arg(&self.0).status().expect("mount");
        assert!(status.success());
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_and_a_read_only_run_fail_cleanly() {
    let scratch = Scratch::new("disk");
    let Some(full) = TinyFs::mount(&scratch.0.join("full"), "40k") else { return };
    let run = full.0.join("run").display().to_string();
    let train = ["train", "--target", "spiral", "--steps", "300", "--batch-size", "64", "--device", "cpu"];
    fails(
        &[&train[..], &["--checkpoint-every", "100", "--out", &run]].concat(),
        1,
        "No space left on device",
    );
    // The first checkpoint did not fit: the fresh run's directory is gone, temp files and all
    // (had an earlier checkpoint fitted, the directory would stay, without temp files).
    let leftovers: Vec<_> = std::fs::read_dir(&run)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left on the full disk: {leftovers:?}");

    let Some(roomy) = TinyFs::mount(&scratch.0.join("roomy"), "4m") else { return };
    let run = roomy.0.join("run").display().to_string();
    succeeds(&[&train[..], &["--out", &run]].concat());
    roomy.read_only();
    let clock = std::time::Instant::now();
    let resume =
        ["train", "--target", "spiral", "--steps", "100000", "--batch-size", "64", "--device", "cpu"];
    fails(&[&resume[..], &["--resume", "--out", &run]].concat(), 1, "Read-only file system");
    assert!(clock.elapsed() < std::time::Duration::from_secs(20), "failed only after training");
    // Outputs are probed before the work: sampling two million points onto the read-only disk
    // fails at once, not after the integration.
    let model = format!("{run}/model.safetensors");
    let out = roomy.0.join("s.csv").display().to_string();
    let clock = std::time::Instant::now();
    let sample = ["sample", "--model", &model, "--n", "2000000", "--steps", "200", "--out", &out];
    fails(&sample, 1, "Read-only file system");
    assert!(clock.elapsed() < std::time::Duration::from_secs(10), "failed only after sampling");
}

#[test]
fn smaller_faults_get_their_own_messages() {
    let scratch = Scratch::new("smaller");
    // A checkpoint whose header names a source that does not exist: a run-time error (1).
    let model = train_small(&scratch, "run", &[]);
    let bytes = std::fs::read(&model).expect("model");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).expect("utf8");
    let patched = header.replace(r#""source":"gaussian""#, r#""source":"nowhere""#);
    assert_ne!(patched, header);
    let mut file = (patched.len() as u64).to_le_bytes().to_vec();
    file.extend(patched.bytes());
    file.extend(&bytes[8 + header_len..]);
    let odd = scratch.0.join("odd.safetensors");
    std::fs::write(&odd, file).expect("write");
    let out = scratch.path("s.csv");
    fails(&["sample", "--model", &odd.display().to_string(), "--out", &out], 1, "unknown dataset `nowhere`");

    // A "Python" that prints nothing: the bench says so instead of a JSON parser's words.
    let bench_out = scratch.path("bench.md");
    // (bench reports its progress on stderr first; the error is its last line).
    let output = flowmatch(&["bench", "--python", "/bin/true", "--quick", "--out", &bench_out]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    let last = message.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("flowmatch: the PyTorch script printed no JSON result"), "{message}");
    assert!(!Path::new(&bench_out).exists());

    // A model trained on a data file evaluates from any directory (the path is stored absolute).
    let data = scratch.path("points.csv");
    succeeds(&["data", "--name", "spiral", "--n", "200", "--out", &data]);
    let from_data = train_small(&scratch, "data-run", &["--data", &data]);
    let elsewhere = Command::new(env!("CARGO_BIN_EXE_flowmatch"))
        .args(["eval", "--model", &from_data, "--n", "50", "--solver", "euler", "--steps", "2"])
        .current_dir("/")
        .output()
        .expect("runs");
    assert!(elsewhere.status.success(), "{}", stderr(&elsewhere));
}

mod renderers {
    //! Reports and tables rendered from fixed numbers: what they say is pinned
    //! without training anything (`cargo insta review` after a deliberate change).

    use flow_eval::Quality;
    use flow_eval::likelihood::Nll;
    use flowmatch::experiments::bench::table::{self, BenchTable, QualityRow, Row};
    use flowmatch::experiments::c2ot::table::{self as c2ot_table, MethodRow, StepsRow};
    use flowmatch::experiments::c2ot::{Method, Protocol};
    use flowmatch::experiments::reproduce::report::{self, ReflowLine, Report};

    fn quality(solver: &str, steps: usize, nfe: usize, w2: f64) -> Quality {
        Quality {
            solver: solver.into(),
            noise: None,
            steps,
            nfe,
            n: 2000,
            w2,
            w2_floor: 0.25,
            w2_ratio: w2 / 0.25,
            mmd: 0.000_12,
            energy: -0.000_03,
            straightness: 0.0123,
        }
    }

    fn reflow_line(pairs: &str) -> ReflowLine {
        ReflowLine {
            pairs: pairs.into(),
            teacher_steps: 20,
            steps: 1000,
            batch_size: 2048,
            lr: 5e-3,
            schedule: "constant",
        }
    }

    #[test]
    fn the_reproduction_report_says_what_was_run_and_measured() {
        let report = Report {
            quick: false,
            device: "cpu".into(),
            threads: 2,
            seed: 0,
            points: 1000,
            flow_steps: 10_000,
            batch_size: 2048,
            flow_rate: (8e-3, "cosine", "tuned"),
            pool: reflow_line("pool:16384"),
            online: Some(reflow_line("online")),
            probe_points: 2000,
            floors: (0.25, 0.3),
            timings: vec![("flow matching".into(), 9.5), ("figures".into(), 3.25)],
            total_seconds: 40.0,
            reused: vec!["out/checkpoints/flow/model.safetensors".into()],
            table: vec![
                ("flow matching", quality("rk4", 20, 80, 0.2550)),
                ("reflow (pool)", quality("euler", 1, 1, 0.2700)),
            ],
            nll: vec![("flow matching", Nll { nats: 2.3, nats_per_dimension: 1.15, n: 2000, nfe: 91 })],
            sweep: vec![("flow matching, euler".into(), vec![1.6, 0.9, 0.6, 0.4, 0.3, 0.26, 0.25])],
            floor_draws: 4,
        };
        insta::assert_snapshot!(report::render(&report));
    }

    #[test]
    fn the_bench_table_gives_speed_ups_both_ways_and_quality_against_the_floor() {
        let row = |measure: &str, ours, theirs, higher_is_better| Row {
            measure: measure.into(),
            ours,
            theirs,
            higher_is_better,
        };
        let bench = BenchTable {
            threads: 2,
            device: "cpu".into(),
            torch: "2.11.0".into(),
            timed_steps: 1000,
            rows: vec![
                row("flow-matching training, steps/s", 900.0, 300.0, true),
                row("RK4 × 20 sampling of 100000 points (s)", 0.5, 2.0, false),
            ],
            floor: 0.25,
            quality: vec![QualityRow {
                model: "flow matching, RK4 × 20",
                ours_post: 0.3,
                ours_tuned: 0.255,
                pytorch: 0.31,
            }],
            couplings: vec![table::CouplingRow {
                batch: 256,
                independent_ms: 0.25,
                ot_ms: 4.0,
                sinkhorn_ms: 20.0,
            }],
        };
        insta::assert_snapshot!(table::render(&bench));
    }

    #[test]
    fn the_c2ot_table_puts_ours_beside_theirs_and_says_where_the_protocol_differs() {
        let rows = Method::ALL
            .iter()
            .enumerate()
            .map(|(k, &method)| MethodRow {
                method,
                euler: vec![0.05 * (k + 1) as f64, 0.07 * (k + 1) as f64],
                adaptive: vec![0.01, 0.02],
                nfe: vec![40.0, 44.0],
            })
            .collect();
        let sweep = vec![StepsRow {
            method: Method::Ot,
            w2_squared: vec![0.06, 0.03, 0.02, 0.015, 0.012],
            straightness: 0.02,
        }];
        let table = c2ot_table::Table {
            quick: false,
            device: "cpu".into(),
            threads: 2,
            protocol: Protocol::FULL,
            model: flowmatch::experiments::c2ot::model_config(),
            flow_rate: (8e-3, flow_train::LrSchedule::Cosine),
            reflow_rate: (5e-3, flow_train::LrSchedule::Constant),
            rows,
            sweep,
            figure: "c2ot.png",
            seconds: 3600.0,
            reused: (0, 43),
        };
        insta::assert_snapshot!(c2ot_table::render(&table));
    }

    #[test]
    fn the_conditional_c2ot_table_puts_each_condition_and_method_beside_theirs() {
        use flowmatch::experiments::c2ot::conditional::table::{self as conditional_table, Row};
        use flowmatch::experiments::c2ot::conditional::{Condition, Method as Coupled};
        let mut rows = Vec::new();
        for (c, &condition) in Condition::ALL.iter().enumerate() {
            for (k, &method) in Coupled::ALL.iter().enumerate() {
                let scale = (c + 1) as f64 * (k + 1) as f64;
                rows.push(Row {
                    condition,
                    method,
                    euler: vec![0.01 * scale, 0.03 * scale, 0.02 * scale],
                    // One seed of one row far above the others, as minibatch OT can give.
                    adaptive: vec![
                        0.005 * scale,
                        if scale == 2.0 { 0.5 } else { 0.007 * scale },
                        0.006 * scale,
                    ],
                    nfe: vec![60.0, 70.0, 65.0],
                });
            }
        }
        let table = conditional_table::Table {
            quick: false,
            device: "cpu".into(),
            threads: 2,
            protocol: Protocol { seeds: 10, ..Protocol::FULL },
            model: flowmatch::experiments::c2ot::model_config(),
            flow_rate: (8e-3, flow_train::LrSchedule::Cosine),
            rows,
            figure: "c2ot-conditional.png",
            seconds: 3600.0,
            reused: (6, 60),
        };
        insta::assert_snapshot!(conditional_table::render(&table));
    }

    #[test]
    fn the_torchcfm_table_marks_cells_above_the_published_mean_and_partial_seeds() {
        use flowmatch::experiments::torchcfm::table::{self as torchcfm_table, Row};
        use flowmatch::experiments::torchcfm::{Method, Protocol, Scores, Task};
        // A made-up measurement: method k scores W2 0.1·(k + 1) on task j + 1 (so some cells sit
        // below their published mean and some above), every seed but the planned rows' last.
        let rows = Method::ALL
            .iter()
            .enumerate()
            .map(|(k, &method)| Row {
                method,
                cells: Task::ALL
                    .iter()
                    .enumerate()
                    .map(|(j, _)| {
                        let seeds = if k % 3 == 0 { 2 } else { 5 };
                        (0..seeds)
                            .map(|s| Scores {
                                test_points: 10_000,
                                w2: 0.1 * (k + 1) as f64 * (j + 1) as f64 + 0.01 * s as f64,
                                npe: 0.05 * (k + 1) as f64,
                            })
                            .collect()
                    })
                    .collect(),
            })
            .collect();
        let table = torchcfm_table::Table {
            quick: false,
            complete: false,
            device: "cpu".into(),
            threads: 2,
            protocol: Protocol::FULL,
            rows,
            floors: vec![0.21, 0.62, 0.035, 0.08],
            figure: Some("torchcfm-2d.png"),
            seconds: 7200.0,
        };
        insta::assert_snapshot!(torchcfm_table::render(&table));
    }
}

#[test]
fn a_flow_from_one_data_set_to_another() {
    let scratch = Scratch::new("source-data");
    let (moons, spiral) = (scratch.path("moons.csv"), scratch.path("spiral.npy"));
    succeeds(&["data", "--name", "moons", "--n", "300", "--out", &moons]);
    succeeds(&["data", "--name", "spiral", "--n", "300", "--seed", "1", "--out", &spiral]);
    let model = train_small(&scratch, "run", &["--source-data", &moons, "--data", &spiral]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.path("run/run.json")).expect("run.json"))
            .expect("json");
    assert!(
        record["settings"]["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("data:") && s.ends_with("moons.csv"))
    );
    // Sampling draws its starting points from the stored source file, and says so.
    let out = scratch.path("samples.csv");
    let output = succeeds(&["sample", "--model", &model, "--n", "50", "--out", &out]);
    assert!(stderr(&output).contains("from the source data file"), "{}", stderr(&output));
    assert_eq!(lines(&out).len(), 51);
    // A data file has no density: eval reports none, logprob refuses.
    let eval = succeeds(&["eval", "--model", &model, "--n", "50", "--solver", "euler", "--steps", "2"]);
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).expect("json");
    assert!(report["nll"].is_null() && report["w2"].as_f64().is_some(), "{report}");
    fails(
        &["logprob", "--model", &model, "--input", &moons, "--out", &scratch.path("l.csv")],
        1,
        "no density",
    );
    // The source's file gone: sampling says which file, or takes --input.
    let moved = scratch.path("moons-moved.csv");
    std::fs::rename(&moons, &moved).expect("move");
    fails(&["sample", "--model", &model, "--out", &scratch.path("s.csv")], 1, "moons.csv is not there");
    succeeds(&["sample", "--model", &model, "--input", &moved, "--out", &scratch.path("s.csv")]);
    // Dimensions must agree; a built-in source and a file cannot both be given.
    let wide = scratch.path("wide.csv");
    succeeds(&["data", "--name", "gaussian", "--dim", "3", "--n", "20", "--out", &wide]);
    let refused = scratch.path("refused");
    fails(&["train", "--source-data", &wide, "--data", &spiral, "--out", &refused], 1, "3-dimensional");
    fails(
        &["train", "--source", "moons", "--source-data", &moved, "--target", "spiral", "--out", &refused],
        2,
        "--source",
    );
    scratch.assert_no_temp_files();
}

/// Numbers of a CSV file of points (its header skipped).
fn csv_values(path: &str) -> Vec<f64> {
    lines(path)
        .iter()
        .skip(1)
        .flat_map(|line| line.split(',').map(|v| v.parse::<f64>().expect("a number")).collect::<Vec<_>>())
        .collect()
}

fn largest_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn every_command_that_runs_a_network_takes_a_backend_and_refuses_data_of_another_dimension() {
    let scratch = Scratch::new("backend");
    let model = train_small(&scratch, "fm", &["--backend", "libtorch"]);
    // The same samples and densities on both backends, to rounding.
    let run = |command: &str, backend: &str, extra: &[&str]| {
        let out = scratch.path(&format!("{command}-{backend}.csv"));
        let mut args = vec![command, "--model", &model, "--backend", backend, "--out", &out];
        args.extend(extra);
        succeeds(&args);
        csv_values(&out)
    };
    let sampled = |backend| run("sample", backend, &["--n", "200", "--steps", "4"]);
    let gap = largest_difference(&sampled("native"), &sampled("libtorch"));
    assert!(gap < 1e-4, "samples differ by {gap} between backends");
    let points = scratch.path("points.csv");
    succeeds(&["data", "--name", "spiral", "--n", "50", "--out", &points]);
    let density = |backend| run("logprob", backend, &["--input", &points, "--solver", "rk4", "--steps", "8"]);
    let gap = largest_difference(&density("native"), &density("libtorch"));
    assert!(gap < 1e-3, "log-densities differ by {gap} nats between backends");
    let quality = |backend| {
        let args = ["eval", "--model", &model, "--n", "50", "--steps", "4", "--backend", backend];
        let report: serde_json::Value = serde_json::from_slice(&succeeds(&args).stdout).expect("json");
        report["w2"].as_f64().expect("a W2")
    };
    assert!((quality("native") - quality("libtorch")).abs() < 1e-4);
    succeeds(&[
        "plot",
        "--model",
        &model,
        "--backend",
        "libtorch",
        "--steps",
        "4",
        "--out",
        &scratch.path("p.png"),
    ]);
    // The reflow teacher and student run where --backend says, and the record says what ran.
    let reflowed = scratch.path("rf");
    succeeds(&[
        "reflow",
        "--teacher",
        &model,
        "--steps",
        "5",
        "--batch-size",
        "64",
        "--pairs",
        "pool:256",
        "--backend",
        "libtorch",
        "--out",
        &reflowed,
    ]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.path("rf/run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(
        (record["backend"].as_str(), record["settings"]["training"]["backend"].as_str()),
        (Some("libtorch"), Some("libtorch"))
    );
    fails(
        &["sample", "--model", &model, "--backend", "gpu", "--out", &scratch.path("s.csv")],
        2,
        "valid: auto, libtorch, native",
    );

    // A 3-D data file given to this 2-D model: a run-time failure in one line, exit 1.
    let wide = scratch.path("wide.csv");
    succeeds(&["data", "--name", "gaussian", "--dim", "3", "--n", "20", "--out", &wide]);
    fails(
        &["sample", "--model", &model, "--input", &wide, "--out", &scratch.path("s.csv")],
        1,
        "3-dimensional",
    );
    fails(
        &["logprob", "--model", &model, "--input", &wide, "--out", &scratch.path("l.csv")],
        1,
        "3-dimensional",
    );
    fails(&["eval", "--model", &model, "--data", &wide], 1, "3-dimensional");
    // A source file that became 3-D under a 2-D teacher: found by reflow once both are read.
    let source = scratch.path("source.csv");
    succeeds(&["data", "--name", "moons", "--n", "100", "--out", &source]);
    let teacher = train_small(&scratch, "from-file", &["--source-data", &source]);
    std::fs::copy(&wide, &source).expect("overwrite the source");
    fails(
        &["reflow", "--teacher", &teacher, "--steps", "5", "--out", &scratch.path("rf3")],
        1,
        "3-dimensional",
    );
    scratch.assert_no_temp_files();

    // The path is a training choice, named in the checkpoint (the line's checkpoints say nothing).
    let cosine = train_small(&scratch, "cosine", &["--path", "cosine", "--sigma", "0.05"]);
    let header = std::fs::read(&cosine).expect("checkpoint");
    let text = String::from_utf8_lossy(&header[..header.len().min(4096)]).into_owned();
    assert!(text.contains("\"path\":\"cosine\"") && text.contains("\"path_sigma\":\"0.05\""), "{text}");
    assert!(
        !String::from_utf8_lossy(&std::fs::read(&model).expect("checkpoint")[..256]).contains("\"path\"")
    );
    succeeds(&["sample", "--model", &cosine, "--n", "20", "--out", &scratch.path("c.csv")]);
    fails(
        &["train", "--target", "spiral", "--path", "spline", "--out", &scratch.path("bad")],
        2,
        "valid: linear, cosine",
    );
    fails(&["train", "--target", "spiral", "--sigma=-1", "--out", &scratch.path("bad")], 2, "--sigma");
    let bridge =
        train_small(&scratch, "bridge", &["--path", "bridge", "--sigma", "0.5", "--coupling", "sinkhorn"]);
    succeeds(&["sample", "--model", &bridge, "--n", "20", "--out", &scratch.path("b.csv")]);
    fails(&["train", "--target", "spiral", "--path", "bridge", "--out", &scratch.path("bad")], 2, "σ > 0");
    let vp = train_small(&scratch, "vp", &["--path", "vp:0.1,20"]);
    succeeds(&["sample", "--model", &vp, "--n", "20", "--out", &scratch.path("v.csv")]);
    // torchcfm's benchmark network and optimiser: SELU, AdamW; the decay is recorded.
    let selu = train_small(&scratch, "selu", &["--activation", "selu", "--weight-decay", "1e-5"]);
    let record = std::fs::read_to_string(scratch.path("selu/run.json")).expect("run record");
    assert!(record.contains("\"weight_decay\": 0.00001"), "{record}");
    succeeds(&["sample", "--model", &selu, "--n", "20", "--out", &scratch.path("s.csv")]);
    fails(
        &["train", "--target", "spiral", "--weight-decay=-1", "--out", &scratch.path("bad")],
        2,
        "--weight-decay",
    );
    // A noiseless model sampled along another scheduler's paths; a noisy or blurred one refused.
    succeeds(&["sample", "--model", &vp, "--n", "20", "--path", "linear", "--out", &scratch.path("vl.csv")]);
    fails(
        &["sample", "--model", &cosine, "--path", "linear", "--out", &scratch.path("x.csv")],
        2,
        "noisy path",
    );
    fails(&["sample", "--model", &vp, "--path", "target:0.1", "--out", &scratch.path("x.csv")], 2, "σ_min");
    fails(
        &["sample", "--model", &vp, "--path", "bridge", "--out", &scratch.path("x.csv")],
        2,
        "valid: linear",
    );
    fails(
        &[
            "train",
            "--target",
            "spiral",
            "--path",
            "target:0.01",
            "--source",
            "moons",
            "--out",
            &scratch.path("bad"),
        ],
        2,
        "Gaussian",
    );
    scratch.assert_no_temp_files();
}
