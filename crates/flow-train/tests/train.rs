//! flow-train's one test binary: learning, not just a loop that runs.

use std::path::PathBuf;
use std::sync::Arc;

use flow_data::{Dataset, PointSource};
use flow_eval::QualityProbe;
use flow_model::{Integrator, ModelConfig, VelocityNet};
use flow_ode::Solver;
use flow_train::{
    Backend, PairMode, PairSource, ReflowSettings, RunOptions, Runtime, TimeSampling, TrainConfig,
    TrainError, reflow, train,
};
use tch::Device;

fn spiral() -> PointSource {
    PointSource::builtin(Dataset::Spiral, 2).expect("2-D")
}

fn gaussian() -> PointSource {
    PointSource::builtin(Dataset::Gaussian, 2).expect("2-D")
}

/// libtorch's generator is global: tests running alongside must not draw
/// between another test's `manual_seed` and its network's initialisation.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fresh_net(seed: i64) -> VelocityNet {
    let _generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed);
    VelocityNet::new(ModelConfig::default(), Device::Cpu).expect("default config")
}

/// How these tests run networks: `auto`, with the kernel `FLOWMATCH_KERNEL` forces.
fn runtime() -> Runtime {
    Runtime::requested(Backend::Auto).expect("a kernel this CPU has")
}

/// A run in memory on [`runtime`].
fn in_memory() -> RunOptions {
    RunOptions { runtime: runtime(), ..RunOptions::default() }
}

/// A run in memory on `backend`.
fn in_memory_on(backend: Backend) -> RunOptions {
    RunOptions { runtime: runtime().with_backend(backend), ..RunOptions::default() }
}

/// The network made ready to integrate, on the backend it would get anywhere.
fn field(net: &VelocityNet) -> Integrator {
    Integrator::new(net, runtime()).expect("integrates")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flow-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn short(steps: usize, batch_size: usize) -> TrainConfig {
    TrainConfig { steps, batch_size, checkpoint_every: 0, ..TrainConfig::default() }
}

fn mean(values: &[f32]) -> f32 {
    values.iter().sum::<f32>() / values.len() as f32
}

fn flow_matching_pairs() -> PairSource {
    PairSource::independent(gaussian(), spiral()).expect("same dimension")
}

/// A teacher trained briefly, shared by the reflow test.
fn trained_teacher(steps: usize) -> VelocityNet {
    let mut net = fresh_net(0);
    train(&mut net, &flow_matching_pairs(), &short(steps, 512), &in_memory()).expect("trains");
    net
}

#[test]
fn flow_matching_lowers_the_loss_and_the_distance_to_the_target() {
    let untrained = fresh_net(0);
    let probe = QualityProbe::new(&gaussian(), &spiral(), 500, 0).expect("probe");
    let (w2_untrained, _) = probe.w2(&field(&untrained), Solver::Rk4, 20).expect("measures");
    let mut net = fresh_net(0);
    let report = train(&mut net, &flow_matching_pairs(), &short(1500, 512), &in_memory()).expect("trains");
    assert_eq!(report.losses.len(), 1500);
    let (early, late) = (mean(&report.losses[..20]), mean(&report.losses[1400..]));
    assert!(late < 0.8 * early, "loss {early} → {late}");
    let (w2, nfe) = probe.w2(&field(&net), Solver::Rk4, 20).expect("measures");
    assert_eq!(nfe, 80);
    // Measured as the excess over the noise floor, which no model can beat.
    let (excess_before, excess_after) = (w2_untrained - probe.floor, w2 - probe.floor);
    assert!(excess_after < 0.4 * excess_before, "W2 {w2_untrained} → {w2} (floor {})", probe.floor);
}

#[test]
fn reflow_straightens_the_flow_and_improves_one_step_sampling() {
    let teacher = trained_teacher(800);
    let probe = QualityProbe::new(&gaussian(), &spiral(), 500, 1).expect("probe");
    let settings = ReflowSettings {
        mode: PairMode::Pool(8192),
        train: TrainConfig {
            steps: 300,
            batch_size: 512,
            checkpoint_every: 0,
            time_sampling: TimeSampling::Warp(0.5),
            ..TrainConfig::default()
        },
        ..ReflowSettings::default()
    };
    let (student, reports) = reflow(&teacher, &gaussian(), &settings, &in_memory()).expect("reflows");
    assert_eq!(reports.len(), 1);
    let (teacher_straightness, student_straightness) = (
        probe.straightness(&field(&teacher)).expect("measures"),
        probe.straightness(&field(&student)).expect("measures"),
    );
    assert!(
        student_straightness < 0.5 * teacher_straightness,
        "straightness {teacher_straightness} → {student_straightness}"
    );
    let (teacher_w2, _) = probe.w2(&field(&teacher), Solver::Euler, 1).expect("measures");
    let (student_w2, _) = probe.w2(&field(&student), Solver::Euler, 1).expect("measures");
    assert!(student_w2 < 0.7 * teacher_w2, "1-step Euler W2 {teacher_w2} → {student_w2}");
}

#[test]
fn online_reflow_and_rounds_run_and_write_each_round() {
    let teacher = trained_teacher(100);
    let dir = scratch("rounds");
    let settings = ReflowSettings {
        rounds: 2,
        train: TrainConfig { steps: 5, batch_size: 64, ..ReflowSettings::default().train },
        ..ReflowSettings::default()
    };
    let options = RunOptions { out_dir: Some(dir.clone()), ..in_memory() };
    let (_, reports) = reflow(&teacher, &gaussian(), &settings, &options).expect("reflows");
    assert_eq!(reports.len(), 2);
    for file in ["round-1/model.safetensors", "round-2/losses.csv", "model.safetensors"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn interrupted_reflow_resumes_to_the_same_weights() {
    let teacher = trained_teacher(100);
    let settings = ReflowSettings {
        rounds: 2,
        mode: PairMode::Pool(512),
        train: TrainConfig {
            steps: 10,
            batch_size: 64,
            checkpoint_every: 5,
            ..ReflowSettings::default().train
        },
        ..ReflowSettings::default()
    };
    let (whole, _) = reflow(&teacher, &gaussian(), &settings, &in_memory()).expect("reflows");
    let dir = scratch("reflow-resume");
    let in_dir = RunOptions { out_dir: Some(dir.clone()), ..in_memory() };
    // A stop already requested: round 1 checkpoints at step 0 and round 2 never starts.
    let stop = Some(Arc::new(std::sync::atomic::AtomicBool::new(true)));
    let stopped = RunOptions { stop, ..in_dir.clone() };
    let (_, reports) = reflow(&teacher, &gaussian(), &settings, &stopped).expect("stops");
    assert_eq!(reports.len(), 1);
    assert!(reports[0].train.interrupted);
    assert!(!dir.join("model.safetensors").exists(), "an interrupted run must not look finished");
    let resume = RunOptions { resume: true, ..in_dir };
    let (resumed, reports) = reflow(&teacher, &gaussian(), &settings, &resume).expect("resumes");
    assert_eq!(reports.len(), 2);
    assert!(resumed.flat_parameters().equal(whole.flat_parameters()));
    // Resuming a finished run retrains nothing and changes nothing.
    let (again, reports) = reflow(&teacher, &gaussian(), &settings, &resume).expect("resumes");
    assert_eq!(reports[1].train.started_at, 10);
    assert!(again.flat_parameters().equal(whole.flat_parameters()));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn same_seed_gives_identical_losses_and_weights() {
    let run = |seed| {
        let mut net = fresh_net(3);
        let config = TrainConfig { seed, time_sampling: TimeSampling::LogitNormal, ..short(30, 128) };
        let report = train(&mut net, &flow_matching_pairs(), &config, &in_memory()).expect("trains");
        (report.losses, net.flat_parameters().copy())
    };
    let (losses_a, weights_a) = run(5);
    let (losses_b, weights_b) = run(5);
    let (losses_c, _) = run(6);
    assert_eq!(losses_a, losses_b);
    assert!(weights_a.equal(&weights_b));
    assert_ne!(losses_a, losses_c);
}

#[test]
fn resuming_continues_exactly_where_the_run_stopped() {
    let dir = scratch("resume");
    let options = RunOptions { out_dir: Some(dir.clone()), ..in_memory() };
    let mut first = fresh_net(4);
    train(&mut first, &flow_matching_pairs(), &short(20, 128), &options).expect("first half");
    // The checkpoint says how many steps its weights have taken.
    let saved =
        flow_train::TrainedModel::load(&dir.join(flow_train::MODEL_FILE), Device::Cpu).expect("loads");
    assert_eq!(saved.metadata.step, Some(20));
    let mut resumed = fresh_net(99);
    let resume = RunOptions { resume: true, ..options.clone() };
    let report = train(&mut resumed, &flow_matching_pairs(), &short(40, 128), &resume).expect("resumes");
    assert_eq!(report.started_at, 20);

    let mut straight = fresh_net(4);
    let whole = train(&mut straight, &flow_matching_pairs(), &short(40, 128), &in_memory()).expect("trains");
    assert_eq!(report.losses, whole.losses);
    assert!(resumed.flat_parameters().equal(straight.flat_parameters()));

    // A stop request ends the run early with a checkpoint that resumes.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let stopped = RunOptions { stop: Some(stop), resume: true, ..options };
    let report = train(&mut fresh_net(4), &flow_matching_pairs(), &short(60, 128), &stopped).expect("stops");
    assert!(report.interrupted);
    assert_eq!(report.losses.len(), 40);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn weight_averaging_is_published_and_resumes_exactly() {
    let dir = scratch("ema");
    let averaged = |steps| TrainConfig { ema: Some(0.9), ..short(steps, 128) };
    let options = RunOptions { out_dir: Some(dir.clone()), ..in_memory() };
    let mut first = fresh_net(8);
    train(&mut first, &flow_matching_pairs(), &averaged(20), &options).expect("first half");
    let resume = RunOptions { resume: true, ..options };
    let mut resumed = fresh_net(8);
    let report = train(&mut resumed, &flow_matching_pairs(), &averaged(40), &resume).expect("resumes");

    let mut straight = fresh_net(8);
    let whole = train(&mut straight, &flow_matching_pairs(), &averaged(40), &in_memory()).expect("trains");
    assert_eq!(report.losses, whole.losses);
    assert!(resumed.flat_parameters().equal(straight.flat_parameters()));
    let saved = flow_model::checkpoint::load(&dir.join("model.safetensors"), Device::Cpu).expect("loads");
    assert!(
        saved.net.flat_parameters().equal(straight.flat_parameters()),
        "the model file holds the average"
    );

    let mut plain = fresh_net(8);
    train(&mut plain, &flow_matching_pairs(), &short(40, 128), &in_memory()).expect("trains");
    assert!(!plain.flat_parameters().equal(straight.flat_parameters()), "averaging changed nothing");
    let bad = TrainConfig { ema: Some(1.0), ..short(5, 8) };
    assert!(bad.validate().is_err());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint() {
    let dir = scratch("nan");
    let options = RunOptions { out_dir: Some(dir.clone()), ..in_memory() };
    let mut net = fresh_net(5);
    train(&mut net, &flow_matching_pairs(), &short(10, 64), &options).expect("good start");
    let saved = std::fs::read(dir.join("model.safetensors")).expect("checkpoint");

    let huge = ndarray::Array2::from_elem((4, 2), 3e38f32);
    let exploding = PairSource::independent(gaussian(), PointSource::Data(Arc::new(huge))).expect("2-D");
    let error = train(&mut net, &exploding, &short(10, 64), &options).expect_err("loss overflows");
    assert!(matches!(error, TrainError::NonFiniteLoss { step: 1, kept: true, .. }), "{error}");
    assert!(error.to_string().ends_with("the last checkpoint is kept"), "{error}");
    assert_eq!(std::fs::read(dir.join("model.safetensors")).expect("checkpoint"), saved);
    // In memory, or before any checkpoint, nothing is there to keep: the message says so.
    let error = train(&mut net, &exploding, &short(10, 64), &in_memory()).expect_err("overflows");
    assert!(error.to_string().ends_with("nothing was saved"), "{error}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn settings_parse_and_bad_values_are_named() {
    assert_eq!(TimeSampling::parse("warp").expect("valid"), TimeSampling::Warp(0.5));
    assert_eq!(TimeSampling::parse("warp:1.5").expect("valid"), TimeSampling::Warp(1.5));
    assert_eq!(
        TimeSampling::parse("warp:2").expect_err("out of range").to_string(),
        "warp parameter s = 2 is outside [0, 1.5]"
    );
    assert!(TimeSampling::parse("cosine").is_err());
    assert_eq!(PairMode::parse("pool:1000").expect("valid"), PairMode::Pool(1000));
    assert!(PairMode::parse("pool:0").is_err());
    let bad = TrainConfig { lr: f64::NAN, ..TrainConfig::default() };
    assert!(bad.validate().expect_err("nan lr").to_string().contains("learning rate"));
    let mismatch =
        PairSource::independent(PointSource::builtin(Dataset::Gaussian, 3).expect("3-D"), spiral());
    assert!(mismatch.is_err());
}

#[test]
fn native_and_libtorch_backends_train_the_same_network() {
    // Both engines consume the same batches; they differ only in rounding, which
    // stays small over a short run.
    // Copies of one network: libtorch's global generator is shared with tests running alongside.
    let start = fresh_net(3);
    let run = |backend| {
        let mut net = start.try_clone().expect("a copy");
        let config = short(200, 256);
        let report =
            train(&mut net, &flow_matching_pairs(), &config, &in_memory_on(backend)).expect("trains");
        assert_eq!(report.backend, backend.name());
        (report.losses, Vec::<f32>::try_from(net.flat_parameters().detach()).expect("floats"))
    };
    let (native_losses, native_weights) = run(Backend::Native);
    let (torch_losses, torch_weights) = run(Backend::Libtorch);
    assert!(native_losses[199] < native_losses[0] * 0.8, "native training does not learn");
    for (step, (a, b)) in native_losses.iter().zip(&torch_losses).enumerate() {
        assert!((a - b).abs() < 1e-3 * b, "step {}: native loss {a}, libtorch {b}", step + 1);
    }
    let worst = native_weights.iter().zip(&torch_weights).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "weights differ by {worst}");
}

#[test]
fn native_backend_says_when_it_cannot_train_a_network() {
    tch::manual_seed(0);
    let config = ModelConfig { precision: flow_model::Precision::F64, ..ModelConfig::default() };
    let mut net = VelocityNet::new(config, Device::Cpu).expect("f64 network");
    let settings = short(5, 16);
    let error =
        train(&mut net, &flow_matching_pairs(), &settings, &in_memory_on(Backend::Native)).expect_err("f64");
    assert!(error.to_string().contains("f64"), "{error}");
    // Auto falls back to libtorch for it.
    let report = train(&mut net, &flow_matching_pairs(), &short(5, 16), &in_memory()).expect("trains");
    assert_eq!(report.backend, "libtorch");
}

/// Flow matching on `device` follows the CPU's libtorch run step by step (the
/// same batches, so the same losses to rounding), and reflow runs there.
fn training_and_reflow_agree_with_the_cpu(device: Device) {
    // One set of initial weights for both runs (libtorch's global generator is
    // shared with the tests running alongside, and differs between devices).
    let start = fresh_net(3);
    let run = |device| {
        let mut net = {
            let _generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            VelocityNet::new(ModelConfig::default(), device).expect("a network on the device")
        };
        net.copy_weights_from(&start).expect("same architecture");
        let config = short(100, 256);
        let report = train(&mut net, &flow_matching_pairs(), &config, &in_memory_on(Backend::Libtorch))
            .expect("trains");
        assert_eq!(report.backend, "libtorch");
        let weights =
            Vec::<f32>::try_from(net.flat_parameters().detach().to_device(Device::Cpu)).expect("floats");
        (net, report.losses, weights)
    };
    let (net, losses, weights) = run(device);
    let (_, cpu_losses, cpu_weights) = run(Device::Cpu);
    for (step, (a, b)) in losses.iter().zip(&cpu_losses).enumerate() {
        assert!((a - b).abs() < 1e-3 * b, "{device:?} step {}: loss {a}, CPU {b}", step + 1);
    }
    let worst = weights.iter().zip(&cpu_weights).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "{device:?}: weights differ from the CPU run by {worst}");

    let settings =
        ReflowSettings { mode: PairMode::Pool(1024), train: short(40, 256), ..ReflowSettings::default() };
    let (student, _) =
        reflow(&net, &gaussian(), &settings, &in_memory_on(Backend::Libtorch)).expect("reflows");
    assert_eq!(student.device(), device);
}
flow_model::test_device!(training_and_reflow_agree_with_the_cpu);

#[test]
fn a_kill_between_checkpoint_files_still_resumes_exactly() {
    // The training state is written first and alone decides a resume: simulate a
    // kill after it was written at step 40 but before the loss log and the model
    // (still at step 20) were replaced, plus a temp file a killed writer left.
    let dir = scratch("torn");
    let options = RunOptions { out_dir: Some(dir.clone()), ..in_memory() };
    // Copies of one network: libtorch's global generator is shared with tests running alongside.
    let start = fresh_net(4);
    let copy = || start.try_clone().expect("a copy");
    for ema in [None, Some(0.9)] {
        let config = |steps| TrainConfig { ema, ..short(steps, 128) };
        let _ = std::fs::remove_dir_all(&dir);
        train(&mut copy(), &flow_matching_pairs(), &config(20), &options).expect("to step 20");
        let older_model = std::fs::read(dir.join("model.safetensors")).expect("model");
        let older_losses = std::fs::read(dir.join("losses.csv")).expect("losses");
        let resume = RunOptions { resume: true, ..options.clone() };
        train(&mut copy(), &flow_matching_pairs(), &config(40), &resume).expect("to step 40");
        std::fs::write(dir.join("model.safetensors"), older_model).expect("roll back the model");
        std::fs::write(dir.join("losses.csv"), older_losses).expect("roll back the loss log");
        std::fs::write(dir.join(".model.safetensors.12345.tmp"), b"half a file").expect("temp file");

        let mut resumed = copy();
        let report = train(&mut resumed, &flow_matching_pairs(), &config(60), &resume).expect("resumes");
        assert_eq!(report.started_at, 40, "ema {ema:?}");
        let mut straight = copy();
        let whole = train(&mut straight, &flow_matching_pairs(), &config(60), &in_memory()).expect("trains");
        assert_eq!(report.losses, whole.losses, "ema {ema:?}");
        assert!(resumed.flat_parameters().equal(straight.flat_parameters()), "ema {ema:?}");
        assert!(!dir.join(".model.safetensors.12345.tmp").exists(), "the stale temp file is removed");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[test]
fn checkpoints_of_the_first_format_still_load_with_their_run_metadata() {
    use flow_train::{PointsRef, RunKind, RunMetadata, RunRecord, TrainedModel};
    // Written by `flowmatch train` / `reflow` before the header was typed.
    let moons = TrainedModel::load(&fixture("v1-train-moons.safetensors"), Device::Cpu).expect("loads");
    assert_eq!(
        moons.metadata,
        RunMetadata {
            step: Some(2),
            ..RunMetadata::flow_matching(
                PointsRef::Builtin(Dataset::Gaussian),
                Some(PointsRef::Builtin(Dataset::Moons))
            )
        }
    );
    assert_eq!(moons.net.config().architecture.as_mlp().hidden, 8);
    assert!(matches!(
        moons.target().expect("built in"),
        Some(PointSource::Builtin { dataset: Dataset::Moons, dim: 2 })
    ));

    let data = TrainedModel::load(&fixture("v1-train-data.safetensors"), Device::Cpu).expect("loads");
    assert_eq!(data.metadata.target, Some(PointsRef::File(PathBuf::from("/tmp/fx/pts.csv"))));
    assert_eq!(data.metadata.step, Some(3));

    let round = TrainedModel::load(&fixture("v1-reflow-round-2.safetensors"), Device::Cpu).expect("loads");
    assert_eq!(round.metadata.kind, Some(RunKind::Reflow));
    assert_eq!(round.metadata.reflow_round, Some(2));
    assert_eq!(round.metadata.teacher, Some(PathBuf::from("fm/model.safetensors")));
    // What is read is what is written: the header survives a round trip unchanged.
    for model in [&moons, &data, &round] {
        let header = model.metadata.to_header();
        assert_eq!(RunMetadata::from_header(&header).expect("own header"), model.metadata);
    }

    // A data-to-data run names both files; they read back as files, and a gone source is named.
    let files = RunMetadata::flow_matching(
        PointsRef::File(PathBuf::from("/nowhere/moons.csv")),
        Some(PointsRef::File(PathBuf::from("/nowhere/spiral.npy"))),
    );
    assert_eq!(files.to_header()["source"], "data:/nowhere/moons.csv");
    assert_eq!(RunMetadata::from_header(&files.to_header()).expect("own header"), files);
    assert_eq!(files.source_dataset(), None);
    let gone = files.source_points(2).expect_err("no such file").to_string();
    assert!(gone.contains("/nowhere/moons.csv is not there"), "{gone}");

    // A malformed entry is named, not guessed around.
    let mut header = moons.metadata.to_header();
    header.insert("step".into(), "two".into());
    let message = RunMetadata::from_header(&header).expect_err("bad step").to_string();
    assert!(message.contains("step") && message.contains("`two`"), "{message}");

    // The run record of that run reads back, and resuming it with other settings is refused.
    let dir = scratch("record");
    std::fs::create_dir_all(&dir).expect("scratch");
    std::fs::copy(fixture("v1-train-moons.run.json"), dir.join(flow_train::RUN_RECORD_FILE)).expect("copy");
    let record = RunRecord::read(&dir).expect("readable").expect("there");
    assert_eq!(
        (record.command.as_str(), record.steps, record.kernel.as_deref()),
        ("train", 2, Some("avx512"))
    );
    RunRecord::check_resume(&dir, "train", &record.settings).expect("same settings resume");
    let mut changed = record.settings.clone();
    changed["recipe"] = serde_json::json!("tuned");
    let refused = RunRecord::check_resume(&dir, "train", &changed).expect_err("other recipe").to_string();
    assert!(refused.contains("recipe"), "{refused}");
    assert!(RunRecord::check_resume(&dir, "reflow", &record.settings).is_err());
    // How long it runs, how often it saves and which code computes may change; the seed may not.
    // Another architecture is left to the checkpoint, which names it.
    for (key, value, allowed) in [
        ("steps", serde_json::json!(5), true),
        ("checkpoint_every", serde_json::json!(1), true),
        ("backend", serde_json::json!("libtorch"), true),
        ("seed", serde_json::json!(1), false),
        ("lr", serde_json::json!(0.002), false),
    ] {
        let mut changed = record.settings.clone();
        changed["training"][key] = value;
        let result = RunRecord::check_resume(&dir, "train", &changed);
        assert_eq!(result.is_ok(), allowed, "training.{key}");
        if let Err(error) = result {
            let message = error.to_string();
            assert!(message.contains(&format!("different training.{key} (")), "{message}");
        }
    }
    let mut wider = record.settings.clone();
    wider["model"]["hidden"] = serde_json::json!(16);
    wider["training"]["seed"] = serde_json::json!(1);
    RunRecord::check_resume(&dir, "train", &wider).expect("another network: the checkpoint says so");
    let mut extended = record.settings.clone();
    extended["model"]["condition"] = serde_json::json!("label");
    extended["training"]["seed"] = serde_json::json!(1);
    RunRecord::check_resume(&dir, "train", &extended).expect("a model entry the record lacks");
    // A record written is the record read.
    let rewritten = scratch("record-rewritten");
    std::fs::create_dir_all(&rewritten).expect("scratch");
    record.write(&rewritten).expect("writes");
    let again = RunRecord::read(&rewritten).expect("readable").expect("there");
    assert_eq!(serde_json::to_value(&again).unwrap(), serde_json::to_value(&record).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&rewritten);
}

#[test]
fn run_metadata_is_written_entry_by_entry_and_points_resolve() {
    use std::collections::BTreeMap;

    use flow_train::{PointsRef, RunKind, RunMetadata};
    let dir = scratch("metadata");
    std::fs::create_dir_all(dir.join("sub")).expect("scratch");
    let file = dir.join("points.csv");
    std::fs::write(&file, "x,y\n0.5,1.5\n-1,2\n3,4\n").expect("data");

    // A file is stored absolute and canonical, whatever way the user named it.
    let named = PointsRef::file(&dir.join("sub/../points.csv"));
    assert_eq!(named, PointsRef::File(file.canonicalize().expect("there")));
    assert_eq!(named.label(), format!("data:{}", file.canonicalize().unwrap().display()));
    assert_eq!(PointsRef::Builtin(Dataset::Moons).label(), "moons");
    let Ok(Some(PointSource::Data(points))) = named.points(2) else { panic!("the file's points") };
    assert_eq!(points.nrows(), 3);
    assert!(matches!(
        PointsRef::Builtin(Dataset::Moons).points(2),
        Ok(Some(PointSource::Builtin { dataset: Dataset::Moons, dim: 2 }))
    ));
    assert!(matches!(PointsRef::File(dir.join("gone.csv")).points(2), Ok(None)));

    // Every entry, spelled as the header keeps it.
    let teacher_run = RunMetadata {
        step: Some(7),
        reflow_round: Some(2),
        teacher: Some(PathBuf::from("fm/model.safetensors")),
        conditions: vec![flow_data::ConditionSpec::parse("label").expect("a condition")],
        ..RunMetadata::flow_matching(PointsRef::Builtin(Dataset::Circles), Some(named.clone()))
    };
    let expected: BTreeMap<String, String> = [
        ("kind", "flow-matching".to_owned()),
        ("source", "circles".to_owned()),
        ("target", named.label()),
        ("teacher", "fm/model.safetensors".to_owned()),
        ("step", "7".to_owned()),
        ("reflow_round", "2".to_owned()),
        ("conditions", "[\"label\"]".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(teacher_run.to_header(), expected);
    assert_eq!(RunMetadata::from_header(&expected).expect("own header"), teacher_run);
    assert_eq!(teacher_run.source_dataset(), Some(Dataset::Circles));
    assert!(matches!(
        teacher_run.source_points(2),
        Ok(PointSource::Builtin { dataset: Dataset::Circles, dim: 2 })
    ));

    // A reflow run keeps the teacher's source, target and conditions, names its teacher, and
    // has not counted steps or rounds yet.
    let student = RunMetadata::reflow(&teacher_run, std::path::Path::new("fm"));
    assert_eq!(
        student,
        RunMetadata {
            kind: Some(RunKind::Reflow),
            teacher: Some(PathBuf::from("fm")),
            step: None,
            reflow_round: None,
            ..teacher_run.clone()
        }
    );
    // An unconditional run's header has no conditions entry, and an empty header is the
    // Gaussian source of the earliest checkpoints.
    let plain = RunMetadata::flow_matching(PointsRef::Builtin(Dataset::Gaussian), None).to_header();
    assert_eq!(plain.keys().collect::<Vec<_>>(), ["kind", "source", "target"]);
    assert_eq!(plain["target"], "");
    assert_eq!(RunMetadata::from_header(&BTreeMap::new()).expect("empty"), RunMetadata::default());
    let mut unknown = plain.clone();
    unknown.insert("kind".into(), "distillation".into());
    let message = RunMetadata::from_header(&unknown).expect_err("unknown kind").to_string();
    assert!(message.contains("the checkpoint's kind: unknown run kind `distillation`"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn couplings_pair_each_minibatch_by_transport_cost() {
    use flow_train::Coupling;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let (x0, x1) = (
        gaussian().draw(96, &mut rng).expect("draws"),
        PointSource::builtin(Dataset::Moons, 2).expect("2-D").draw(96, &mut rng).expect("draws"),
    );
    let mean_cost = |a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>| {
        (a - b).mapv(|v| f64::from(v) * f64::from(v)).sum() / a.nrows() as f64
    };
    let independent = mean_cost(&x0, &x1);
    let sorted = |m: &ndarray::Array2<f32>| {
        let mut rows: Vec<Vec<u32>> =
            m.rows().into_iter().map(|r| r.iter().map(|v| v.to_bits()).collect()).collect();
        rows.sort();
        rows
    };
    // OT in chunks of 32: the sources stay as drawn, each chunk's targets are a permutation of
    // that chunk's own targets, and the pairing costs far less than pairing by index.
    let (a, b) = Coupling::Ot.apply((x0.clone(), x1.clone()), 32, &mut rng).expect("ot");
    assert_eq!(a, x0);
    for chunk in 0..3 {
        let rows = ndarray::s![chunk * 32..(chunk + 1) * 32, ..];
        assert_eq!(sorted(&b.slice(rows).to_owned()), sorted(&x1.slice(rows).to_owned()), "chunk {chunk}");
    }
    assert!(mean_cost(&a, &b) < 0.5 * independent, "OT {} against {independent}", mean_cost(&a, &b));
    // Sinkhorn: pairs drawn from the plan, the same for the same seed, and cheap like OT's.
    let draw = |seed| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Coupling::Sinkhorn(0.05).apply((x0.clone(), x1.clone()), 96, &mut rng).expect("sinkhorn")
    };
    let (s0, s1) = draw(9);
    assert_eq!(draw(9), (s0.clone(), s1.clone()));
    assert!(
        mean_cost(&s0, &s1) < 0.6 * independent,
        "Sinkhorn {} against {independent}",
        mean_cost(&s0, &s1)
    );
    // Independent leaves the batch as drawn; names parse and print back.
    assert_eq!(
        Coupling::Independent.apply((x0.clone(), x1.clone()), 8, &mut rng).expect("as drawn"),
        (x0.clone(), x1.clone())
    );
    // The absolute regularisation is the relative one times the batch's mean squared cost: the
    // same plan, so the same pairs from the same draws.
    let mean_squared = flow_metrics::couplings::squared_costs(
        &x0.slice(ndarray::s![..96, ..]).to_owned(),
        &x1.slice(ndarray::s![..96, ..]).to_owned(),
    );
    let mean_squared = mean_squared.iter().sum::<f64>() / mean_squared.len() as f64;
    let absolute = |seed| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let first = |m: &ndarray::Array2<f32>| m.slice(ndarray::s![..96, ..]).to_owned();
        Coupling::SinkhornAbsolute(0.05 * mean_squared)
            .apply((first(&x0), first(&x1)), 96, &mut rng)
            .expect("sinkhorn")
    };
    let relative = {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let first = |m: &ndarray::Array2<f32>| m.slice(ndarray::s![..96, ..]).to_owned();
        Coupling::Sinkhorn(0.05).apply((first(&x0), first(&x1)), 96, &mut rng).expect("sinkhorn")
    };
    assert_eq!(absolute(9), relative);
    for text in ["independent", "ot", "sinkhorn:0.1", "sinkhorn-abs:2"] {
        assert_eq!(text.parse::<Coupling>().expect("valid").to_string(), text);
    }
    assert!("sinkhorn-abs:0".parse::<Coupling>().is_err() && "sinkhorn-abs:".parse::<Coupling>().is_err());
    assert_eq!("sinkhorn".parse::<Coupling>().expect("valid"), Coupling::Sinkhorn(Coupling::DEFAULT_EPSILON));
    assert!("sinkhorn:0".parse::<Coupling>().is_err() && "emd".parse::<Coupling>().is_err());
}

#[test]
fn a_plan_larger_than_the_batch_is_served_over_several_batches() {
    use flow_train::{Batch, Coupling, Place};
    use rand::SeedableRng;
    let moons = PointSource::builtin(Dataset::Moons, 2).expect("2-D");
    let pairs = PairSource::coupled(gaussian(), moons.clone(), Coupling::Ot, 64).expect("same dimension");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let host = |batch: Batch| match batch {
        Batch::Rows { x0, x1, .. } => (x0, x1),
        Batch::Tensors { .. } => panic!("asked for host pairs"),
    };
    // Three batches of 16, then 16 more: the first 64 rows are one optimal plan
    // (a batch of 16 planned on its own would cost more), and the fourth batch starts a block.
    let batches: Vec<_> =
        (0..5).map(|_| host(pairs.next_batch(16, &mut rng, Place::Rows, 0.0).expect("pairs"))).collect();
    let joined = |part: &[(ndarray::Array2<f32>, ndarray::Array2<f32>)]| {
        let x0: Vec<_> = part.iter().map(|b| b.0.view()).collect();
        let x1: Vec<_> = part.iter().map(|b| b.1.view()).collect();
        (
            ndarray::concatenate(ndarray::Axis(0), &x0).expect("2-D"),
            ndarray::concatenate(ndarray::Axis(0), &x1).expect("2-D"),
        )
    };
    let (x0, x1) = joined(&batches[..4]);
    let cost =
        |a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>| (a - b).mapv(|v| f64::from(v).powi(2)).sum();
    let optimal = flow_metrics::couplings::ot_pairing(&x0, &x1).expect("same shape");
    let best = cost(&x0, &x1.select(ndarray::Axis(0), &optimal));
    assert!(
        (cost(&x0, &x1) - best).abs() < 1e-6 * best,
        "the block is not one plan: {} > {best}",
        cost(&x0, &x1)
    );
    // The fifth batch comes from a fresh block: its targets are not the first block's.
    let first: std::collections::HashSet<u32> = x1.iter().map(|v| v.to_bits()).collect();
    assert!(batches[4].1.iter().all(|v| !first.contains(&v.to_bits())));

    // Plans of 40 and batches of 16: the third batch ends one block (8 pairs) and starts the
    // next (8 pairs); every batch holds 16 pairs, and rows 0–39 and 40–79 are one plan each.
    let straddling = PairSource::coupled(gaussian(), moons, Coupling::Ot, 40).expect("same dimension");
    let batches: Vec<_> =
        (0..5).map(|_| host(straddling.next_batch(16, &mut rng, Place::Rows, 0.0).expect("pairs"))).collect();
    assert!(batches.iter().all(|(x0, x1)| x0.nrows() == 16 && x1.nrows() == 16));
    let (x0, x1) = joined(&batches);
    for rows in [0..40, 40..80] {
        let (a, b) =
            (x0.slice(ndarray::s![rows.clone(), ..]).to_owned(), x1.slice(ndarray::s![rows, ..]).to_owned());
        let best = cost(
            &a,
            &b.select(ndarray::Axis(0), &flow_metrics::couplings::ot_pairing(&a, &b).expect("plan")),
        );
        assert!((cost(&a, &b) - best).abs() < 1e-6 * best, "a block is not one plan");
    }
}

/// Conditional flow matching: labels and values reach the network, guidance mixes
/// its conditional and unconditional velocities, and C2OT pairs within conditions.
mod conditional {
    use std::f64::consts::PI;

    use flow_data::{ConditionShape, ConditionSpec, ConditionedTarget, Dataset, PointSource, seeded_rng};
    use flow_model::{Backend, Guide, Integrator, ModelConfig, VelocityNet};
    use flow_ode::{Record, Solver, TimeGrid};
    use flow_train::{Coupling, Drawn, PairSource, TrainConfig, train};
    use ndarray::Array2;
    use rand::SeedableRng;

    use super::{GENERATOR, field, gaussian, in_memory, runtime, short};

    fn labelled_8gaussians() -> ConditionedTarget {
        ConditionedTarget::builtin(Dataset::EightGaussians, 2, &[ConditionSpec::Label]).expect("labelled")
    }

    /// A label-conditioned model of 8gaussians trained `steps` steps with condition dropout 0.2.
    fn trained(steps: usize, seed: i64) -> VelocityNet {
        let pairs = PairSource::conditioned(gaussian(), labelled_8gaussians(), Coupling::Independent, 256)
            .expect("pairs");
        let config = ModelConfig { condition: pairs.condition(), ..ModelConfig::default() };
        let mut net = {
            let _generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            tch::manual_seed(seed);
            VelocityNet::new(config, tch::Device::Cpu).expect("config")
        };
        let settings = TrainConfig { condition_dropout: 0.2, ..short(steps, 256) };
        train(&mut net, &pairs, &settings, &in_memory()).expect("trains");
        net
    }

    /// Samples of `class` (guided by `weight`) from 4 000 fresh Gaussian sources, by RK4 × 20.
    fn samples(model: &Integrator, class: usize, weight: f64) -> Array2<f32> {
        let x0 = gaussian().draw(4000, &mut seeded_rng(11)).expect("draws");
        let guide =
            Guide::repeated(model.net().config().condition, &[class as f32], 4000, weight).expect("guide");
        model
            .integrate_guided(
                &x0,
                &guide,
                &TimeGrid::uniform(20).expect("grid"),
                Solver::Rk4,
                Record::Nothing,
            )
            .expect("integrates")
            .points
    }

    /// Points farther than 2 from the centre of component `k` (its standard deviation is
    /// 0.1^¼ ≈ 0.56, so 2 is 3.6 of them: 0.2 % of the component's own points lie beyond).
    fn off_support(points: &Array2<f32>, k: usize) -> usize {
        let angle = k as f64 * PI / 4.0;
        let (cx, cy) = (5.0 * angle.cos(), 5.0 * angle.sin());
        points.rows().into_iter().filter(|p| (f64::from(p[0]) - cx).hypot(f64::from(p[1]) - cy) > 2.0).count()
    }

    #[test]
    fn samples_of_class_k_land_on_class_ks_support() {
        let model = field(&trained(1500, 21));
        for k in 0..8 {
            let off = off_support(&samples(&model, k, 1.0), k);
            assert!(
                off < 4000 / 20,
                "class {k}: {off} of 4000 samples off its support (at most 5 % allowed)"
            );
        }
    }

    #[test]
    fn guidance_zero_is_the_unconditional_model_and_guidance_above_one_sharpens() {
        // A model trained only 300 steps leaks: at w = 1 some samples of a class land between
        // the components. Guidance w = 2 follows v(c) − v(∅), the direction in which the
        // class becomes likelier, twice as far, and puts fewer samples off the class's support
        // (measured on 3 seeds × 3 classes: 1.7 % → 0.6 % on average, never more).
        let model = field(&trained(300, 22));
        let (plain, sharpened): (usize, usize) = (0..8)
            .map(|k| (off_support(&samples(&model, k, 1.0), k), off_support(&samples(&model, k, 2.0), k)))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        assert!(sharpened * 10 < plain * 7, "w = 2 leaves {sharpened} off-support samples, w = 1 {plain}");

        // w = 0 is the null condition's velocity, what an unguided integration uses, whatever the label.
        let x0 = gaussian().draw(4000, &mut seeded_rng(11)).expect("draws");
        let grid = TimeGrid::uniform(20).expect("grid");
        let unconditional =
            model.integrate(&x0, &grid, Solver::Rk4, Record::Nothing).expect("integrates").points;
        assert_eq!(samples(&model, 3, 0.0), unconditional);
        // And it samples the whole mixture: every component receives about its eighth.
        let trained_long = field(&trained(1500, 21));
        let points = samples(&trained_long, 5, 0.0);
        for k in 0..8 {
            let on = points.nrows() - off_support(&points, k);
            assert!(
                (300..=700).contains(&on),
                "component {k} receives {on} of 4000 unguided samples (500 expected)"
            );
        }
    }

    #[test]
    fn native_and_libtorch_backends_guide_alike() {
        let net = trained(100, 23);
        let x0 = gaussian().draw(300, &mut seeded_rng(1)).expect("draws");
        let conditions = Array2::from_shape_fn((300, 1), |(i, _)| (i % 8) as f32);
        let guide = Guide::new(net.config().condition, &conditions, 2.5).expect("guide");
        let grid = TimeGrid::uniform(8).expect("grid");
        let run = |backend| {
            let model = Integrator::new(&net, runtime().with_backend(backend)).expect("ready");
            assert_eq!(model.backend(), backend);
            model
                .integrate_guided(&x0, &guide, &grid, Solver::Rk4, Record::Nothing)
                .expect("integrates")
                .points
        };
        let worst =
            (&run(Backend::Native) - &run(Backend::Libtorch)).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
        assert!(worst < 1e-4, "native and libtorch guided samples differ by {worst}");
        // A guide for another condition shape, or another number of points, is refused.
        let other =
            Guide::repeated(ConditionShape { classes: 2, values: 0 }, &[1.0], 300, 1.0).expect("guide");
        let model = field(&net);
        assert!(model.integrate_guided(&x0, &other, &grid, Solver::Euler, Record::Nothing).is_err());
        let short_guide = Guide::repeated(net.config().condition, &[1.0], 10, 1.0).expect("guide");
        assert!(model.integrate_guided(&x0, &short_guide, &grid, Solver::Euler, Record::Nothing).is_err());
    }

    #[test]
    fn a_mismatched_model_dropout_without_conditions_and_c2ot_without_conditions_are_refused() {
        let pairs = PairSource::conditioned(gaussian(), labelled_8gaussians(), Coupling::Independent, 64)
            .expect("pairs");
        let mut plain = super::fresh_net(1);
        let error = train(&mut plain, &pairs, &short(5, 16), &in_memory()).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("the pairs carry a label of 8 classes but the model takes unconditional")
        );
        let unconditional = PairSource::independent(gaussian(), super::spiral()).expect("pairs");
        let settings = TrainConfig { condition_dropout: 0.1, ..short(5, 16) };
        let error = train(&mut plain, &unconditional, &settings, &in_memory()).expect_err("refused");
        assert!(error.to_string().contains("condition dropout needs conditions"));
        let c2ot = PairSource::coupled(gaussian(), super::spiral(), Coupling::C2ot(0.05), 64);
        assert!(c2ot.is_err_and(|e| e.to_string().contains("needs conditions on the target")));
    }

    fn drawn(target: &ConditionedTarget, n: usize, seed: u64) -> Drawn {
        let mut rng = seeded_rng(seed);
        let x0 =
            PointSource::builtin(Dataset::EightGaussians, 2).expect("2-D").draw(n, &mut rng).expect("draws");
        let (x1, c1) = target.draw(n, &mut rng).expect("draws");
        Drawn { x0, x1, c1 }
    }

    fn squared_cost(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
        (a - b).mapv(|v| f64::from(v) * f64::from(v)).sum()
    }

    /// Rows of `b` as bit patterns, sorted: equal for permutations of one another.
    fn sorted_rows(b: &Array2<f32>) -> Vec<Vec<u32>> {
        let mut rows: Vec<Vec<u32>> =
            b.rows().into_iter().map(|r| r.iter().map(|v| v.to_bits()).collect()).collect();
        rows.sort();
        rows
    }

    #[test]
    fn c2ot_pairs_each_source_within_its_class_at_the_least_cost_there() {
        let target =
            ConditionedTarget::builtin(Dataset::TorchdynMoons, 2, &[ConditionSpec::Label]).expect("labelled");
        let batch = drawn(&target, 96, 5);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let shape = target.shape();
        let coupled =
            Coupling::C2ot(0.05).apply_conditioned(drawn(&target, 96, 5), shape, 96, &mut rng).expect("c2ot");
        // Sources stay; targets (with their labels) are permuted; source i keeps the label of
        // the target drawn beside it.
        assert_eq!(coupled.x0, batch.x0);
        let joined =
            |x: &Array2<f32>, c: &Array2<f32>| ndarray::concatenate![ndarray::Axis(1), x.view(), c.view()];
        assert_eq!(
            sorted_rows(&joined(&coupled.x1, &coupled.c1)),
            sorted_rows(&joined(&batch.x1, &batch.c1))
        );
        assert_eq!(coupled.c1, batch.c1, "every pair keeps its source's label");
        // Within each class the pairing is optimal: plain OT on that class alone costs the same.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for class in [0.0f32, 1.0] {
            let rows: Vec<usize> = (0..96).filter(|&i| batch.c1[[i, 0]] == class).collect();
            let pick = |m: &Array2<f32>| m.select(ndarray::Axis(0), &rows);
            let (a, b) = Coupling::Ot.apply((pick(&batch.x0), pick(&batch.x1)), 96, &mut rng).expect("ot");
            let ours = squared_cost(&pick(&coupled.x0), &pick(&coupled.x1));
            assert!((ours - squared_cost(&a, &b)).abs() < 1e-3 * ours, "class {class}: {ours} against OT's");
        }
        // Plain OT ignores labels: it costs less overall, and pairs across the moons.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let ot = Coupling::Ot.apply_conditioned(drawn(&target, 96, 5), shape, 96, &mut rng).expect("ot");
        assert!(squared_cost(&ot.x0, &ot.x1) < squared_cost(&coupled.x0, &coupled.x1));
        assert_ne!(ot.c1, batch.c1);
    }

    #[test]
    fn c2ot_with_a_continuous_condition_pairs_close_conditions_and_stays_near_ot() {
        let target = ConditionedTarget::builtin(Dataset::TorchdynMoons, 2, &[ConditionSpec::Coordinate(0)])
            .expect("x");
        let shape = target.shape();
        let batch = drawn(&target, 128, 6);
        let condition_gap = |c: &Drawn| (&c.c1 - &batch.c1).mapv(f32::abs).mean().expect("rows");
        let couple = |coupling: Coupling| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            coupling.apply_conditioned(drawn(&target, 128, 6), shape, 128, &mut rng).expect("couples")
        };
        let (ot, c2ot, independent) =
            (couple(Coupling::Ot), couple(Coupling::C2ot(0.05)), couple(Coupling::Independent));
        // Independent keeps every pair's own condition; C2OT comes close; OT ignores conditions.
        assert_eq!(condition_gap(&independent), 0.0);
        assert!(
            condition_gap(&c2ot) * 4.0 < condition_gap(&ot),
            "C2OT {} against OT {}",
            condition_gap(&c2ot),
            condition_gap(&ot)
        );
        // A continuous value is weighed, not binned: some pairs join conditions on either side of
        // an integer (a coupling that took the value for a label never would).
        let crossing = (0..128).filter(|&i| c2ot.c1[[i, 0]].floor() != batch.c1[[i, 0]].floor()).count();
        assert!(crossing > 0, "no pair crosses an integer value of the condition");
        // A looser ratio weighs conditions less: pairs cost less in space and differ more in condition.
        let loose = couple(Coupling::C2ot(0.5));
        assert!(squared_cost(&loose.x0, &loose.x1) <= squared_cost(&c2ot.x0, &c2ot.x1));
        assert!(condition_gap(&loose) >= condition_gap(&c2ot));
        for text in ["c2ot:0.05", "c2ot:0.2"] {
            assert_eq!(text.parse::<Coupling>().expect("valid").to_string(), text);
        }
        assert_eq!("c2ot".parse::<Coupling>().expect("valid"), Coupling::C2ot(Coupling::DEFAULT_RATIO));
        assert!("c2ot:0".parse::<Coupling>().is_err() && "c2ot:1".parse::<Coupling>().is_err());
    }
}

#[test]
fn schedules_recipes_and_time_draws_follow_their_definitions() {
    use flow_train::{LrSchedule, Recipe};
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    // Cosine: ½·base·(1 + cos(π·step/steps)), from base at step 0 towards 0 at the end.
    for (step, expected) in
        [(0, 1.0), (250, 0.5 * (1.0 + 0.5f64.sqrt())), (500, 0.5), (750, 0.5 * (1.0 - 0.5f64.sqrt()))]
    {
        let rate = LrSchedule::Cosine.rate(4e-3, step, 1_000);
        assert!((rate - 4e-3 * expected).abs() < 1e-15, "step {step}: {rate}");
        assert_eq!(LrSchedule::Constant.rate(4e-3, step, 1_000), 4e-3);
    }
    assert_eq!(LrSchedule::Cosine.rate(4e-3, 0, 0), 4e-3, "no steps: the base rate, not a division by zero");
    // The recipes as README and PERF.md state them.
    assert_eq!(
        (Recipe::Post.flow_matching(), Recipe::Post.reflow()),
        ((1e-3, LrSchedule::Constant), (1e-3, LrSchedule::Constant))
    );
    assert_eq!(
        (Recipe::Tuned.flow_matching(), Recipe::Tuned.reflow()),
        ((8e-3, LrSchedule::Cosine), (5e-3, LrSchedule::Constant))
    );
    for recipe in Recipe::ALL {
        assert_eq!(Recipe::parse(&recipe.to_string()).expect("own name"), recipe);
    }
    assert_eq!((Recipe::Post.name(), Recipe::Tuned.name()), ("post", "tuned"));
    for schedule in LrSchedule::ALL {
        assert_eq!(schedule.name().parse::<LrSchedule>().expect("own name"), schedule);
    }
    assert_eq!((LrSchedule::Constant.name(), LrSchedule::Cosine.name()), ("constant", "cosine"));
    assert!(Recipe::parse("fast").expect_err("unknown").to_string().contains("post, tuned"));
    // Experiments take whole configurations from the recipe: its rate and schedule, reflow on
    // the post's warped times, everything else the defaults.
    let fm = Recipe::Tuned.flow_matching_config(300, 256);
    assert_eq!(
        fm,
        TrainConfig {
            steps: 300,
            batch_size: 256,
            lr: 8e-3,
            lr_schedule: LrSchedule::Cosine,
            ..TrainConfig::default()
        }
    );
    let rf = Recipe::Tuned.reflow_config(100, 512);
    assert_eq!(
        rf,
        TrainConfig {
            steps: 100,
            batch_size: 512,
            lr: 5e-3,
            time_sampling: TimeSampling::Warp(0.5),
            ..TrainConfig::default()
        }
    );

    // Each time sampling applied to the same underlying draws: u, warp(u, s), σ(z).
    for sampling in
        [TimeSampling::Uniform, TimeSampling::Warp(0.5), TimeSampling::Warp(1.25), TimeSampling::LogitNormal]
    {
        assert_eq!(sampling.describe().parse::<TimeSampling>().expect("own description"), sampling);
        let mut ours = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut reference = ours.clone();
        for _ in 0..100 {
            let expected = match sampling {
                TimeSampling::Uniform => reference.random::<f64>(),
                TimeSampling::Warp(s) => flow_ode::warp_time(reference.random::<f64>(), s),
                TimeSampling::LogitNormal => {
                    let z: f64 = StandardNormal.sample(&mut reference);
                    1.0 / (1.0 + (-z).exp())
                }
            };
            assert_eq!(sampling.draw(&mut ours), expected, "{sampling}");
        }
    }
    assert_eq!(TimeSampling::Warp(0.25).describe(), "warp:0.25");
    assert_eq!(
        (TimeSampling::Uniform.to_string(), TimeSampling::LogitNormal.to_string()),
        ("uniform".into(), "logit-normal".into())
    );
    assert_eq!("logitnormal".parse::<TimeSampling>().expect("also taken"), TimeSampling::LogitNormal);
    // Logit-normal times: P(t < σ(1)) = Φ(1) ≈ 0.8413, and they stay inside (0, 1).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let times: Vec<f64> = (0..20_000).map(|_| TimeSampling::LogitNormal.draw(&mut rng)).collect();
    let below = times.iter().filter(|&&t| t < 1.0 / (1.0 + (-1.0f64).exp())).count() as f64 / 20_000.0;
    assert!((below - 0.8413).abs() < 0.01 && times.iter().all(|&t| t > 0.0 && t < 1.0), "{below}");
}

#[test]
fn settings_are_checked_at_their_boundaries_and_recorded() {
    use rand::SeedableRng;
    let accepted = |config: TrainConfig| {
        config.validate().map(|()| true).unwrap_or_else(|e| {
            let message = e.to_string();
            assert!(!message.is_empty());
            false
        })
    };
    let base = TrainConfig::default();
    for (config, ok) in [
        (TrainConfig { steps: 0, ..base.clone() }, false),
        (TrainConfig { steps: 1, ..base.clone() }, true),
        (TrainConfig { batch_size: 0, ..base.clone() }, false),
        (TrainConfig { batch_size: 1, ..base.clone() }, true),
        (TrainConfig { lr: 0.0, ..base.clone() }, false),
        (TrainConfig { lr: -1e-3, ..base.clone() }, false),
        (TrainConfig { lr: f64::INFINITY, ..base.clone() }, false),
        (TrainConfig { lr: 1e-9, ..base.clone() }, true),
        (TrainConfig { ema: Some(0.0), ..base.clone() }, false),
        (TrainConfig { ema: Some(1.0), ..base.clone() }, false),
        (TrainConfig { ema: Some(f64::NAN), ..base.clone() }, false),
        (TrainConfig { ema: Some(1e-6), ..base.clone() }, true),
        (TrainConfig { ema: Some(0.9999), ..base.clone() }, true),
        (TrainConfig { condition_dropout: 1.0, ..base.clone() }, false),
        (TrainConfig { condition_dropout: -0.1, ..base.clone() }, false),
        (TrainConfig { condition_dropout: 0.0, ..base.clone() }, true),
        (TrainConfig { condition_dropout: 0.99, ..base.clone() }, true),
    ] {
        assert_eq!(accepted(config.clone()), ok, "{config:?}");
    }
    let named = |config: TrainConfig| config.validate().expect_err("refused").to_string();
    assert!(named(TrainConfig { steps: 0, ..base.clone() }).contains("steps"));
    assert!(named(TrainConfig { batch_size: 0, ..base.clone() }).contains("batch size"));
    assert!(named(TrainConfig { ema: Some(2.0), ..base.clone() }).contains("EMA decay"));
    assert!(named(TrainConfig { condition_dropout: 1.5, ..base.clone() }).contains("condition dropout"));

    // The run record's settings: condition dropout only when used, so older records read alike.
    let json = TrainConfig { ema: Some(0.999), ..base.clone() }.to_json();
    assert_eq!(
        json,
        serde_json::json!({
            "steps": 10_000, "batch_size": 2048, "lr": 1e-3, "lr_schedule": "constant", "ema": 0.999,
            "time_sampling": "uniform", "seed": 0, "checkpoint_every": 1000,
        })
    );
    assert_eq!(TrainConfig { condition_dropout: 0.3, ..base.clone() }.to_json()["condition_dropout"], 0.3);

    // A batch is sized before anything is allocated: the post's network keeps (2 + 1)·4 values
    // per point for inputs and targets and 4 per hidden unit (64 × 3), f32: 3 120 bytes a point.
    let mut net = fresh_net(0);
    let huge = TrainConfig { batch_size: 10_000_000_000, ..short(1, 1) };
    let error = train(&mut net, &flow_matching_pairs(), &huge, &in_memory()).expect_err("too large");
    let message = error.to_string();
    assert!(message.starts_with("a batch of 10000000000 points needs 31.2 TB"), "{message}");
    // A pool is sized the same way: two f32 points of 2 coordinates per pair.
    let pool = PairSource::pool(
        (&net, runtime()),
        &gaussian(),
        Default::default(),
        1_000_000_000_000,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
    );
    let message = pool.err().expect("too large").to_string();
    assert!(message.starts_with("a pool of 1000000000000 teacher pairs needs 16.0 TB"), "{message}");
}

#[test]
fn a_pool_stops_between_chunks_and_holds_every_pair_asked_for() {
    use rand::SeedableRng;
    let teacher = fresh_net(1);
    // A stop asked before the pool began still yields the first chunk (16 384 pairs): within
    // one chunk the pool completes, past it the stop is honoured and says how far it got.
    let settings = flow_train::TeacherSettings { solver: Solver::Euler, steps: 1 };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let one_chunk =
        PairSource::pool_until((&teacher, runtime()), &gaussian(), settings, 16_384, &mut rng, || true);
    assert!(one_chunk.is_ok());
    let stopped =
        PairSource::pool_until((&teacher, runtime()), &gaussian(), settings, 16_385, &mut rng, || true);
    let message = stopped.err().expect("stopped").to_string();
    assert!(message.contains("(16384 of 16385 pairs)"), "{message}");
    // Without a stop, chunks add up to the size asked for, and the pairs are the teacher's map.
    let pool =
        PairSource::pool_until((&teacher, runtime()), &gaussian(), settings, 16_390, &mut rng, || false)
            .expect("pool");
    assert_eq!(pool.describe(), "pool of 16390 teacher pairs");
    let Ok(flow_train::Batch::Rows { x0, x1, .. }) =
        pool.next_batch(64, &mut rng, flow_train::Place::Rows, 0.0)
    else {
        panic!("a host batch");
    };
    let mapped = settings.transport(&field(&teacher), &x0).expect("transports");
    let worst = mapped.iter().zip(&x1).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "pool targets are not the teacher's map of their sources: {worst}");
}

#[test]
fn each_reflow_round_trains_as_a_run_of_its_own_seed_from_the_rounds_before() {
    // Round k is the run `train` would make from round k − 1's model, as teacher and starting
    // weights, with seed + k − 1: rounds draw different batches, and each is reproducible alone.
    let teacher = trained_teacher(50);
    let settings = ReflowSettings {
        rounds: 2,
        train: TrainConfig {
            steps: 4,
            batch_size: 64,
            seed: 3,
            checkpoint_every: 0,
            ..ReflowSettings::default().train
        },
        ..ReflowSettings::default()
    };
    let (_, rounds) = reflow(&teacher, &gaussian(), &settings, &in_memory()).expect("reflows");
    let (first, _) =
        reflow(&teacher, &gaussian(), &ReflowSettings { rounds: 1, ..settings.clone() }, &in_memory())
            .expect("reflows");
    let mut student = first.try_clone().expect("copies");
    let pairs = PairSource::online(&first, runtime(), gaussian(), settings.teacher).expect("same dimension");
    let by_hand =
        train(&mut student, &pairs, &TrainConfig { seed: 4, ..settings.train.clone() }, &in_memory())
            .expect("trains");
    assert_eq!(rounds[1].train.losses, by_hand.losses);
    assert_ne!(rounds[0].train.losses, rounds[1].train.losses);
}

/// Off the line: the cosine path (and a noisy one) learns, both engines agree
/// step by step, and the checkpoint header names the path (the line writes no entry).
#[test]
fn other_paths_train_alike_on_both_backends_and_are_recorded() {
    use flow_path::{AffinePath, Scheduler};
    use flow_train::RunMetadata;

    let start = fresh_net(5);
    for path in [
        AffinePath::new(Scheduler::Cosine, 0.0),
        AffinePath::new(Scheduler::Linear, 0.1),
        AffinePath::new(Scheduler::VP, 0.0),
        AffinePath::new(Scheduler::Polynomial { exponent: 2.0 }, 0.0),
        AffinePath::new(Scheduler::Target { sigma_min: 0.01 }, 0.0),
        AffinePath::bridge(0.5),
    ] {
        let path = path.expect("a valid path");
        let run = |backend| {
            let mut net = start.try_clone().expect("a copy");
            let config = TrainConfig { path, ..short(150, 256) };
            let report =
                train(&mut net, &flow_matching_pairs(), &config, &in_memory_on(backend)).expect("trains");
            assert_eq!(report.backend, backend.name());
            report.losses
        };
        let (native, torch) = (run(Backend::Native), run(Backend::Libtorch));
        for (step, (a, b)) in native.iter().zip(&torch).enumerate() {
            assert!(
                (a - b).abs() < 1e-3 * b,
                "{} step {}: native {a}, libtorch {b}",
                path.describe(),
                step + 1
            );
        }
        let recorded = RunMetadata { path, ..RunMetadata::default() };
        let header = recorded.to_header();
        assert_eq!(header.get("path"), Some(&path.name().to_string()));
        assert_eq!(RunMetadata::from_header(&header).expect("reads back"), recorded);
    }
    // A model trained on the cosine path carries the Gaussian onto the spiral: its samples come
    // far closer than the untrained network's (the velocity it learns is the marginal one).
    let probe = QualityProbe::new(&gaussian(), &spiral(), 500, 9).expect("a probe");
    let mut bent = start.try_clone().expect("a copy");
    let cosine = TrainConfig {
        path: AffinePath::new(Scheduler::Cosine, 0.0).expect("σ"),
        lr: 8e-3,
        lr_schedule: flow_train::LrSchedule::Cosine,
        ..short(1500, 512)
    };
    train(&mut bent, &flow_matching_pairs(), &cosine, &in_memory()).expect("trains");
    let (before, _) = probe.w2(&field(&start), Solver::Rk4, 20).expect("measures");
    let (after, _) = probe.w2(&field(&bent), Solver::Rk4, 20).expect("measures");
    assert!(
        after < 0.7 * before && after < 1.5 * probe.floor,
        "cosine path: W2 {before} → {after}, floor {}",
        probe.floor
    );
    // The two paths train differently from the line: the target is not x1 − x0 on the cosine path.
    let line =
        train(&mut start.try_clone().expect("a copy"), &flow_matching_pairs(), &short(5, 64), &in_memory());
    let cosine = TrainConfig { path: AffinePath::new(Scheduler::Cosine, 0.0).expect("σ"), ..short(5, 64) };
    let bent = train(&mut start.try_clone().expect("a copy"), &flow_matching_pairs(), &cosine, &in_memory());
    assert_ne!(line.expect("trains").losses, bent.expect("trains").losses);
    assert!(!RunMetadata::default().to_header().contains_key("path"));
    let mut header = RunMetadata::default().to_header();
    header.insert("path".into(), "spline".into());
    let message = RunMetadata::from_header(&header).expect_err("unknown path").to_string();
    assert!(message.contains("path") && message.contains("spline"), "{message}");
}

/// N((1.5, −0.5), diag(0.25, 2)): a target whose every affine path has a closed-form
/// marginal velocity (`AffinePath::gaussian_marginal`, derived in its doc comment).
const GAUSS_MEAN: [f64; 2] = [1.5, -0.5];
const GAUSS_VARIANCE: [f64; 2] = [0.25, 2.0];

fn gaussian_target() -> PointSource {
    let mut points = flow_data::samplers::gaussian(20_000, 2, 1.0, &mut flow_data::seeded_rng(41));
    for (j, mut column) in points.columns_mut().into_iter().enumerate() {
        column.mapv_inplace(|z| (f64::from(z) * GAUSS_VARIANCE[j].sqrt() + GAUSS_MEAN[j]) as f32);
    }
    PointSource::Data(Arc::new(points))
}

/// Per coordinate, whether `points` have the mean and variance given (within `slack` of the
/// target's scale: sampling error and what a small network leaves).
fn assert_moments(points: &ndarray::Array2<f32>, mean: [f64; 2], variance: [f64; 2], slack: f64, what: &str) {
    let n = points.nrows() as f64;
    for j in 0..2 {
        let column = points.column(j);
        let m = column.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let v = column.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / n;
        assert!(
            (m - mean[j]).abs() < slack * variance[j].sqrt().max(0.5),
            "{what}, coordinate {j}: mean {m} vs {}",
            mean[j]
        );
        assert!(
            (v - variance[j]).abs() < 2.0 * slack * variance[j],
            "{what}, coordinate {j}: variance {v} vs {}",
            variance[j]
        );
    }
}

/// A 7 × 7 grid spanning ±2 standard deviations of x_t's two coordinates, row-major.
fn marginal_grid(marginals: &[flow_path::GaussianMarginal; 2]) -> Vec<f32> {
    let mut points = Vec::new();
    for a in 0..7 {
        for b in 0..7 {
            for (j, offset) in [(0, a), (1, b)] {
                let m = marginals[j];
                points.push((m.mean + (offset as f64 - 3.0) / 1.5 * m.variance.sqrt()) as f32);
            }
        }
    }
    points
}

/// The network's output at 2-D `points` (row-major) and time `t`, flat.
fn network_at(net: &VelocityNet, points: &[f32], t: f64) -> Vec<f32> {
    let rows = (points.len() / 2) as i64;
    let x = tch::Tensor::from_slice(points).view([rows, 2]);
    let times = tch::Tensor::full([rows, 1], t, (tch::Kind::Float, Device::Cpu));
    Vec::<f32>::try_from(tch::no_grad(|| net.forward(&x, &times)).view([-1])).expect("floats")
}

/// Every path trained from the standard Gaussian onto a Gaussian learns the closed-form marginal
/// velocity on a grid around the marginal, and carries the source onto the target; a model
/// trained on the cosine path and followed along straight lines (flow_matching's
/// `ScheduleTransformedModel`) passes the straight path's marginal half-way and ends on the
/// same target.
#[test]
fn every_path_learns_the_closed_form_velocity_of_a_gaussian_flow() {
    use flow_ode::{Record, TimeGrid};
    use flow_path::{AffinePath, ScheduleChange, Scheduler};

    let pairs = PairSource::independent(gaussian(), gaussian_target()).expect("2-D");
    let start = gaussian().draw(4000, &mut flow_data::seeded_rng(43)).expect("points");
    let grid = TimeGrid::uniform(40).expect("steps");
    let mut cosine_model = None;
    for path in [
        Ok(AffinePath::LINE),
        AffinePath::new(Scheduler::Cosine, 0.0),
        AffinePath::new(Scheduler::VP, 0.0),
        AffinePath::new(Scheduler::Polynomial { exponent: 2.0 }, 0.0),
        AffinePath::new(Scheduler::Target { sigma_min: 0.01 }, 0.0),
        AffinePath::new(Scheduler::Linear, 0.1),
        AffinePath::bridge(0.5),
    ] {
        let path = path.expect("a valid path");
        let mut net = fresh_net(7);
        let config =
            TrainConfig { path, lr: 8e-3, lr_schedule: flow_train::LrSchedule::Cosine, ..short(1500, 512) };
        train(&mut net, &pairs, &config, &in_memory()).expect("trains");
        // The learned velocity against E[u | x_t = x] on a 7 × 7 grid spanning ±2 standard
        // deviations of x_t, at three times; measured relative to the velocity's own size.
        let (mut error, mut size) = (0.0f64, 0.0f64);
        for t in [0.2, 0.5, 0.8] {
            let marginals = [0, 1].map(|j| path.gaussian_marginal(t, GAUSS_MEAN[j], GAUSS_VARIANCE[j]));
            let points = marginal_grid(&marginals);
            let v = network_at(&net, &points, t);
            for (i, &found) in v.iter().enumerate() {
                let expected = marginals[i % 2].velocity(f64::from(points[i]));
                error += (f64::from(found) - expected).powi(2);
                size += expected.powi(2);
            }
        }
        let relative = (error / size).sqrt();
        assert!(
            relative < 0.1,
            "{}: velocity off the closed form by {relative:.3} of its size",
            path.describe()
        );
        // Its samples: the source carried onto the target (Lipman's path ends blurred by σ_min,
        // the noisy line starts from N(0, 1 + σ²) but is integrated from N(0, 1)).
        let integrator = Integrator::new(&net, runtime()).expect("integrates");
        let solved = integrator.integrate(&start, &grid, Solver::Rk4, Record::Nothing).expect("samples");
        assert_moments(&solved.points, GAUSS_MEAN, GAUSS_VARIANCE, 0.1, &path.describe());
        if path.scheduler == Scheduler::Cosine {
            cosine_model = Some(net);
        }
    }
    let cosine_model = cosine_model.expect("the cosine path was trained");
    let change = ScheduleChange::new(Scheduler::Cosine, Scheduler::Linear).expect("affine schedulers");
    let straight = Integrator::new(&cosine_model, runtime()).expect("integrates").with_schedule(change);
    let solved = straight.integrate(&start, &grid, Solver::Rk4, Record::Every(20)).expect("samples");
    assert_moments(&solved.points, GAUSS_MEAN, GAUSS_VARIANCE, 0.1, "cosine model on straight paths");
    // Half-way, the straight path's marginal (mean ½μ), not the cosine's (mean μ/√2).
    let (t, middle) = &solved.trajectory[1];
    assert!((t - 0.5).abs() < 1e-9, "recorded at {t}");
    let half = [0, 1].map(|j| AffinePath::LINE.gaussian_marginal(0.5, GAUSS_MEAN[j], GAUSS_VARIANCE[j]));
    assert_moments(middle, half.map(|m| m.mean), half.map(|m| m.variance), 0.1, "straight half-way");
}

/// \[SF\]2M: a network trained with the score objective on the bridge (and on I-CFM's noisy
/// line) from the standard Gaussian onto a Gaussian learns (σ²/2)·∇log p_t, against the
/// closed form −(σ²/2)(x − mean_t)/variance_t; both engines take the same weighted steps; and
/// the flow with its learned score, integrated as the bridge's SDE, carries the source onto
/// the target. A score objective without noise is refused.
#[test]
fn the_score_objective_learns_the_bridges_analytic_score_on_both_backends() {
    use flow_ode::{Record, TimeGrid};
    use flow_path::{AffinePath, Objective, Scheduler};

    let pairs = PairSource::independent(gaussian(), gaussian_target()).expect("2-D");
    let bridge = AffinePath::bridge(0.5).expect("σ");
    for path in [bridge, AffinePath::new(Scheduler::Linear, 0.3).expect("σ")] {
        let mut net = fresh_net(7);
        let config = TrainConfig {
            path,
            objective: Objective::Score,
            lr: 8e-3,
            lr_schedule: flow_train::LrSchedule::Cosine,
            ..short(1500, 512)
        };
        train(&mut net, &pairs, &config, &in_memory()).expect("trains");
        let half_variance = 0.5 * path.sigma * path.sigma;
        let (mut error, mut size) = (0.0f64, 0.0f64);
        for t in [0.2, 0.5, 0.8] {
            let marginals = [0, 1].map(|j| path.gaussian_marginal(t, GAUSS_MEAN[j], GAUSS_VARIANCE[j]));
            let points = marginal_grid(&marginals);
            let s = network_at(&net, &points, t);
            for (i, &found) in s.iter().enumerate() {
                let m = marginals[i % 2];
                let expected = -half_variance * (f64::from(points[i]) - m.mean) / m.variance;
                error += (f64::from(found) - expected).powi(2);
                size += expected.powi(2);
            }
        }
        let relative = (error / size).sqrt();
        assert!(
            relative < 0.15,
            "{}: score off the closed form by {relative:.3} of its size",
            path.describe()
        );
    }

    // The weighted loss, step by step, on the native kernels and on libtorch.
    let start = fresh_net(9);
    let run = |backend| {
        let mut net = start.try_clone().expect("a copy");
        let config = TrainConfig { path: bridge, objective: Objective::Score, lr: 3e-3, ..short(100, 256) };
        train(&mut net, &pairs, &config, &in_memory_on(backend)).expect("trains").losses
    };
    let (native, torch) = (run(Backend::Native), run(Backend::Libtorch));
    for (step, (a, b)) in native.iter().zip(&torch).enumerate() {
        assert!((a - b).abs() < 1e-3 * b.abs().max(1e-3), "step {}: native {a}, libtorch {b}", step + 1);
    }

    // The flow and its score on the same batches (the same seed), sampled as the bridge's SDE.
    let mut flow = fresh_net(11);
    let flow_config = TrainConfig {
        path: bridge,
        lr: 8e-3,
        lr_schedule: flow_train::LrSchedule::Cosine,
        ..short(1500, 512)
    };
    train(&mut flow, &pairs, &flow_config, &in_memory()).expect("trains");
    let mut score = fresh_net(12);
    train(
        &mut score,
        &pairs,
        &TrainConfig { objective: Objective::Score, ..flow_config.clone() },
        &in_memory(),
    )
    .expect("trains");
    let sde = Integrator::new(&flow, runtime())
        .expect("integrates")
        .with_learned_score(&score, runtime(), (bridge, 3))
        .expect("the same backend");
    let start = gaussian().draw(4000, &mut flow_data::seeded_rng(43)).expect("points");
    let grid = TimeGrid::uniform(100).expect("steps");
    let solved =
        sde.integrate(&start, &grid, Solver::EulerMaruyama { noise: 1.0 }, Record::Nothing).expect("samples");
    assert_eq!(solved.nfe, 200, "a flow and a score evaluation per step");
    assert_moments(&solved.points, GAUSS_MEAN, GAUSS_VARIANCE, 0.1, "[SF]2M's SDE");

    let noiseless = TrainConfig { objective: Objective::Score, ..short(5, 8) };
    assert!(noiseless.validate().unwrap_err().to_string().contains("needs a noisy path"));
    let json = TrainConfig { path: bridge, objective: Objective::Score, ..short(5, 8) }.to_json();
    assert_eq!(json["objective"], "score");
    assert_eq!(TrainConfig::from_json(&json).expect("reads back").objective, Objective::Score);
    assert!(short(5, 8).to_json().get("objective").is_none());
}

/// torchcfm's benchmark network and optimiser: SELU and AdamW's decoupled weight decay train
/// alike on both engines step by step, and the decay shrinks the weights against plain Adam.
#[test]
fn selu_and_adamw_train_alike_on_both_backends() {
    use flow_model::{Activation, Architecture, Mlp};

    let start = {
        let _generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tch::manual_seed(11);
        let mlp = Mlp { activation: Activation::Selu, ..Mlp::default() };
        let config = ModelConfig { architecture: Architecture::Mlp(mlp), ..ModelConfig::default() };
        VelocityNet::new(config, Device::Cpu).expect("a SELU network")
    };
    let norm = |net: &VelocityNet| f64::try_from(net.flat_parameters().norm()).expect("a norm");
    let run = |backend, weight_decay| {
        let mut net = start.try_clone().expect("a copy");
        let config = TrainConfig { weight_decay, lr: 3e-3, ..short(150, 256) };
        let report =
            train(&mut net, &flow_matching_pairs(), &config, &in_memory_on(backend)).expect("trains");
        (report.losses, norm(&net))
    };
    // A decay far above torchcfm's 1e-5, so that 150 steps show it: λ·lr·steps = 0.45.
    let ((native, native_norm), (torch, torch_norm)) =
        (run(Backend::Native, 1.0), run(Backend::Libtorch, 1.0));
    for (step, (a, b)) in native.iter().zip(&torch).enumerate() {
        assert!((a - b).abs() < 1e-3 * b, "step {}: native {a}, libtorch {b}", step + 1);
    }
    assert!((native_norm - torch_norm).abs() < 1e-3 * torch_norm, "{native_norm} vs {torch_norm}");
    let (_, undecayed) = run(Backend::Native, 0.0);
    assert!(native_norm < 0.9 * undecayed, "decayed {native_norm}, Adam {undecayed}");
    let json = TrainConfig { weight_decay: 1e-5, ..short(5, 8) }.to_json();
    assert_eq!(TrainConfig::from_json(&json).expect("reads back").weight_decay, 1e-5);
    assert!(short(5, 8).to_json().get("weight_decay").is_none());
    assert!(TrainConfig { weight_decay: -1.0, ..short(5, 8) }.validate().is_err());
}

/// The example's code, run here as it runs for a user (its `main` only parses the step count).
#[path = "../examples/library.rs"]
#[allow(dead_code)]
mod library;

/// `examples/library.rs`, the crates used as a library, runs and learns: its samples come
/// within 1.8× the W2 floor (an untrained network: 2.6×) and fresh spiral points score
/// above −3.1 nats (untrained: −3.29).
#[test]
fn the_library_example_trains_samples_and_scores() {
    let report = {
        let _generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        library::run(1000).expect("the example runs")
    };
    let number = |key: &str| report[key].as_f64().unwrap_or_else(|| panic!("{key} in {report}"));
    assert!(number("w2") < 1.8 * number("floor"), "{report}");
    assert!(number("mean_log_density") > -3.1, "{report}");
}

/// The run spec is run.json's settings: written and read back it is the same spec, a record
/// of an earlier version reads as the spec it described, and what a resume may change is the
/// spec's own rule (steps, checkpoints, backend), not a list of keys.
#[test]
fn a_run_spec_round_trips_through_its_record_and_decides_what_a_resume_may_change() {
    use flow_path::{AffinePath, Scheduler};
    use flow_train::{Coupling, Pairs, Recipe, RunRecord, RunSpec};

    let spec = RunSpec {
        pairs: Pairs::FlowMatching {
            source: "gaussian".into(),
            target: "moons".into(),
            coupling: Coupling::Sinkhorn(0.1),
            ot_batch: 512,
            conditions: vec!["label".into()],
            data_files: vec!["200 bytes, fnv1a 0123456789abcdef".into()],
        },
        model: Some(ModelConfig::default()),
        recipe: Recipe::Tuned,
        training: TrainConfig {
            path: AffinePath::new(Scheduler::Cosine, 0.05).expect("σ"),
            condition_dropout: 0.3,
            time_sampling: TimeSampling::Warp(0.8),
            ema: Some(0.999),
            ..Recipe::Tuned.flow_matching_config(300, 256)
        },
        backend: Backend::Libtorch,
    };
    assert_eq!(RunSpec::from_settings("train", &spec.to_settings()).expect("reads back"), spec);
    let reflow = RunSpec {
        pairs: Pairs::Reflow {
            teacher: PathBuf::from("runs/fm/model.safetensors"),
            mode: PairMode::Pool(4096),
            solver: flow_ode::SolverKind::Rk4,
            steps: 20,
            rounds: 2,
            from_teacher: true,
        },
        model: None,
        recipe: Recipe::Post,
        training: Recipe::Post.reflow_config(1000, 2048),
        backend: Backend::Auto,
    };
    assert_eq!(RunSpec::from_settings("reflow", &reflow.to_settings()).expect("reads back"), reflow);

    // The committed record of an earlier version: a 1-hidden-layer MLP of 8 on moons, 2 steps.
    let record: RunRecord =
        serde_json::from_str(&std::fs::read_to_string(fixture("v1-train-moons.run.json")).expect("fixture"))
            .expect("a record");
    let old = RunSpec::from_settings(&record.command, &record.settings).expect("an old record reads");
    assert_eq!(old.model.map(|m| m.architecture), Some(flow_model::Architecture::mlp(8, 1)));
    assert_eq!((old.training.steps, old.training.batch_size, old.recipe), (2, 16, Recipe::Post));
    assert!(matches!(old.pairs, Pairs::FlowMatching { coupling: Coupling::Independent, .. }));

    let dir = scratch("spec-resume");
    std::fs::create_dir_all(&dir).expect("scratch");
    std::fs::copy(fixture("v1-train-moons.run.json"), dir.join(flow_train::RUN_RECORD_FILE)).expect("copy");
    let longer = RunSpec {
        training: TrainConfig { steps: 50, checkpoint_every: 5, ..old.training.clone() },
        backend: Backend::Native,
        ..old.clone()
    };
    RunRecord::check_resume_spec(&dir, &longer).expect("longer, saved more often, on another backend");
    let reseeded = RunSpec { training: TrainConfig { seed: 3, ..old.training.clone() }, ..old.clone() };
    let refused = RunRecord::check_resume_spec(&dir, &reseeded).expect_err("another seed").to_string();
    assert!(refused.contains("different training.seed (0 before, 3 now)"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}
