//! flow-model's one test binary (each test binary links libtorch, so there is one).

use std::collections::BTreeMap;
use std::path::PathBuf;

use flow_data::ConditionShape;
use flow_model::checkpoint::{self, load, load_into, save};
use flow_model::{
    Activation, Architecture, DeviceChoice, Mlp, ModelConfig, ModelError, Precision, TensorState,
    TimeEmbedding, VelocityNet, array_to_tensor, tensor_to_array,
};
use flow_ode::{Record, Solver, TimeGrid, VelocityField, integrate};
use ndarray::{Array2, array};
use tch::{Device, Kind, Tensor};

/// How these tests run networks: `auto`, with the kernel `FLOWMATCH_KERNEL` forces.
fn runtime() -> flow_model::Runtime {
    flow_model::Runtime::requested(flow_model::Backend::Auto).expect("a kernel this CPU has")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flow-model-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn net(config: ModelConfig, seed: i64) -> VelocityNet {
    tch::manual_seed(seed);
    VelocityNet::new(config, Device::Cpu).expect("valid config")
}

#[test]
fn libtorch_is_linked_and_answers_device_queries() {
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
    let product = a.matmul(&a);
    assert_eq!(Vec::<f32>::try_from(product.view([-1])).expect("floats"), vec![7.0, 10.0, 15.0, 22.0]);
    let gpus = tch::Cuda::device_count();
    assert!(gpus >= 0);
    assert_eq!("cpu".parse::<DeviceChoice>().expect("cpu").resolve().expect("cpu"), Device::Cpu);
    assert_eq!("cuda:1".parse::<DeviceChoice>().expect("parses"), DeviceChoice::Cuda(1));
    assert!("tpu".parse::<DeviceChoice>().is_err());
    if gpus == 0 {
        let message = DeviceChoice::Cuda(0).resolve().unwrap_err().to_string();
        assert_eq!(message, "device `cuda:0` asked for, but libtorch sees no CUDA device");
        assert_eq!(DeviceChoice::Auto.resolve().expect("auto"), Device::Cpu);
    } else {
        assert!(DeviceChoice::Cuda(0).resolve().is_ok());
    }
}

#[test]
fn default_network_is_the_posts() {
    let model = net(ModelConfig::default(), 0);
    let count: i64 = model.parameters().iter().map(Tensor::numel).map(|n| n as i64).sum();
    // 3→64, 64→64, 64→64, 64→2 with biases.
    assert_eq!(count, 3 * 64 + 64 + 2 * (64 * 64 + 64) + 64 * 2 + 2);
    let names: Vec<String> = ModelConfig::default().parameter_names().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias", "6.weight", "6.bias"]
    );
    let x = Tensor::zeros([5, 2], (Kind::Float, Device::Cpu));
    let v = model.velocity_at(&x, 0.3);
    assert_eq!(v.size(), [5, 2]);
    assert!(!v.requires_grad(), "evaluation must run without autograd");
    // PyTorch's default initialisation bounds weights by 1/√fan_in.
    let first = &model.parameters()[0];
    assert!(first.abs().max().double_value(&[]) <= 1.0 / 3f64.sqrt());
}

#[test]
fn any_dimension_width_depth_activation_and_embedding() {
    for activation in Activation::ALL {
        let config = ModelConfig {
            dim: 5,
            architecture: Architecture::Mlp(Mlp { hidden: 16, layers: 2, activation }),
            time_embedding: TimeEmbedding::Sinusoidal { frequencies: 4 },
            precision: Precision::F64,
            ..ModelConfig::default()
        };
        let model = net(config, 1);
        let x = Tensor::ones([3, 5], (Kind::Double, Device::Cpu));
        assert_eq!(model.velocity_at(&x, 0.5).size(), [3, 5]);
        assert_eq!(model.config().linear_shapes(), [(13, 16), (16, 16), (16, 5)]);
    }
    let bad = ModelConfig::with_mlp(Mlp { layers: 0, ..Mlp::default() });
    assert!(VelocityNet::new(bad, Device::Cpu).is_err());
}

#[test]
fn checkpoints_round_trip_exactly_and_keep_metadata() {
    let dir = scratch("roundtrip");
    for config in [
        ModelConfig::default(),
        ModelConfig {
            dim: 3,
            precision: Precision::F64,
            time_embedding: TimeEmbedding::Sinusoidal { frequencies: 3 },
            ..ModelConfig::default()
        },
    ] {
        let model = net(config, 2);
        let path = dir.join("model.safetensors");
        let extra = BTreeMap::from([("step".to_owned(), "42".to_owned())]);
        save(&model, &path, &extra).expect("save");
        let loaded = load(&path, Device::Cpu).expect("load");
        assert_eq!(loaded.net.config(), &config);
        assert_eq!(loaded.metadata.get("step").map(String::as_str), Some("42"));
        let x = Tensor::randn([64, config.dim as i64], (config.precision.kind(), Device::Cpu));
        let before = model.velocity_at(&x, 0.7);
        let after = loaded.net.velocity_at(&x, 0.7);
        assert!(before.equal(&after), "outputs differ after a round trip");
        // The same network and header entries write the same bytes, whatever order the
        // safetensors crate's hash map gives them (several entries, so an unsorted order shows).
        let many = BTreeMap::from_iter((0..8).map(|k| (format!("entry{k}"), k.to_string())));
        let bytes = |name: &str| {
            let path = dir.join(name);
            save(&model, &path, &many).expect("save");
            std::fs::read(&path).expect("read")
        };
        let first = bytes("a.safetensors");
        for attempt in 0..5 {
            assert_eq!(bytes("b.safetensors"), first, "attempt {attempt}: bytes differ");
        }
        let length = u64::from_le_bytes(first[..8].try_into().expect("8 bytes")) as usize;
        assert_eq!(length % 8, 0, "the header is padded to 8 bytes");
        assert!(load(&dir.join("b.safetensors"), Device::Cpu).is_ok());
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn bad_checkpoints_are_errors_that_name_the_problem() {
    let dir = scratch("bad");
    let good = dir.join("good.safetensors");
    save(&net(ModelConfig::default(), 3), &good, &BTreeMap::new()).expect("save");
    let bytes = std::fs::read(&good).expect("read");

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let message = load(&truncated, Device::Cpu).err().expect("truncated fails").to_string();
    assert!(message.contains("truncated.safetensors: not a flowmatch checkpoint"), "{message}");

    let text = dir.join("notes.safetensors");
    std::fs::write(&text, "these are not tensors").expect("write");
    assert!(matches!(load(&text, Device::Cpu), Err(ModelError::NotACheckpoint { .. })));

    let missing = dir.join("missing.safetensors");
    assert!(matches!(load(&missing, Device::Cpu), Err(ModelError::Io { .. })));

    let mut wider = net(ModelConfig::with_mlp(Mlp { hidden: 32, ..Mlp::default() }), 4);
    let message = load_into(&mut wider, &good).expect_err("other architecture fails").to_string();
    assert!(message.contains("checkpoint is for dim 2, 3 hidden layers of 64"), "{message}");

    // A file whose header claims one architecture but holds tensors of another.
    let lying = dir.join("lying.safetensors");
    let mut header_only = bytes.clone();
    let header_len = u64::from_le_bytes(header_only[..8].try_into().expect("8 bytes")) as usize;
    let header = String::from_utf8(header_only[8..8 + header_len].to_vec()).expect("utf8");
    let patched = header.replace(r#"\"hidden\":64"#, r#"\"hidden\":65"#);
    assert_ne!(patched, header);
    header_only.splice(8..8 + header_len, patched.bytes());
    std::fs::write(&lying, &header_only).expect("write");
    let message = load(&lying, Device::Cpu).err().expect("shape mismatch fails").to_string();
    assert!(message.contains("tensor `0.weight` has shape [64, 3], expected [65, 3]"), "{message}");

    // Tampered sizes are caught against the tensors before anything is sized by them.
    let tamper = |name: &str, from: &str, to: &str| {
        let patched = header.replace(from, to);
        assert_ne!(patched, header);
        let mut file = (patched.len() as u64).to_le_bytes().to_vec();
        file.extend(patched.bytes());
        file.extend(&bytes[8 + header_len..]);
        let path = dir.join(name);
        std::fs::write(&path, file).expect("write");
        load(&path, Device::Cpu).err().expect("tampered header fails").to_string()
    };
    let message = tamper("huge.safetensors", r#"\"hidden\":64"#, r#"\"hidden\":1000000000"#);
    assert!(message.contains("has shape [64, 3], expected [1000000000, 3]"), "{message}");
    let message = tamper("deep.safetensors", r#"\"layers\":3"#, r#"\"layers\":1000000000"#);
    assert!(message.contains("describes 1000000000 hidden layers but the file holds 8 tensors"), "{message}");
    let message = tamper(
        "waves.safetensors",
        r#"\"time_embedding\":{\"kind\":\"raw\"}"#,
        r#"\"time_embedding\":{\"kind\":\"sinusoidal\",\"frequencies\":1000000000}"#,
    );
    assert!(message.contains("has shape [64, 3], expected [64, 2000000002]"), "{message}");
    let message = tamper("flat.safetensors", r#"\"dim\":2"#, r#"\"dim\":0"#);
    assert!(message.contains("has shape [64, 3], expected [64, 1]"), "{message}");
    // A tensor of another name stands where one the network needs should be.
    let message = tamper("renamed.safetensors", r#""2.weight""#, r#""9.weight""#);
    assert!(message.ends_with("renamed.safetensors: tensor `2.weight` is missing"), "{message}");

    // The header names the format and the architecture; the first format (no `architecture`,
    // an MLP's fields alone) still loads, as the same MLP; an unknown architecture is refused.
    assert!(header.contains(r#""format":"flowmatch-velocity/2""#), "{header}");
    assert!(header.contains(r#"\"architecture\":\"mlp\""#), "{header}");
    let first = header
        .replace(r#""format":"flowmatch-velocity/2""#, r#""format":"flowmatch-velocity-mlp/1""#)
        .replace(r#"\"architecture\":\"mlp\","#, "");
    assert!(!first.contains("architecture"), "{first}");
    let mut file = (first.len() as u64).to_le_bytes().to_vec();
    file.extend(first.bytes());
    file.extend(&bytes[8 + header_len..]);
    let v1 = dir.join("v1.safetensors");
    std::fs::write(&v1, file).expect("write");
    let loaded = load(&v1, Device::Cpu).expect("a first-format file loads");
    assert_eq!(*loaded.net.config(), ModelConfig { dim: 2, ..ModelConfig::default() });
    let message = tamper("unet.safetensors", r#"\"architecture\":\"mlp\""#, r#"\"architecture\":\"unet\""#);
    assert!(message.contains("bad architecture") && message.contains("unet"), "{message}");

    let mut poisoned = bytes.clone();
    poisoned[8 + header_len..8 + header_len + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let path = dir.join("nan.safetensors");
    std::fs::write(&path, &poisoned).expect("write");
    let message = load(&path, Device::Cpu).err().expect("a NaN weight fails").to_string();
    assert!(message.contains("holds 1 non-finite values"), "{message}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// dx/dt = (1 + t)·A·x on both state types.
fn rotation() -> Array2<f64> {
    array![[-0.2, 1.0], [-1.0, -0.2]]
}

struct LinearTensorField(Tensor);

impl VelocityField<TensorState> for LinearTensorField {
    type Error = flow_ode::OdeError;

    fn velocity(&self, x: &TensorState, t: f64) -> flow_ode::Result<TensorState> {
        Ok(TensorState(x.0.matmul(&self.0) * (1.0 + t)))
    }
}

#[test]
fn tensor_and_ndarray_paths_give_the_same_numbers() {
    let x0 = array![[1.0, 0.5], [-0.3, 2.0], [0.0, -1.0]];
    let matrix = Tensor::from_slice(rotation().as_slice().expect("contiguous")).view([2, 2]);
    let tensor_field = LinearTensorField(matrix);
    let array_field = |x: &Array2<f64>, t: f64| x.dot(&rotation()) * (1.0 + t);
    for solver in [Solver::Euler, Solver::Heun, Solver::Rk4, Solver::Dopri5 { rtol: 1e-7, atol: 1e-9 }] {
        let grid = TimeGrid::warped(12, 0.5).expect("grid");
        let on_host = integrate(&array_field, x0.clone(), &grid, solver, Record::Nothing).expect("ndarray");
        let start = TensorState(Tensor::from_slice(x0.as_slice().expect("contiguous")).view([3, 2]));
        let on_tensor = integrate(&tensor_field, start, &grid, solver, Record::Nothing).expect("tensor");
        let tensor_values = Vec::<f64>::try_from(on_tensor.state.0.view([-1])).expect("doubles");
        for (a, b) in tensor_values.iter().zip(on_host.state.iter()) {
            assert!((a - b).abs() < 1e-12, "{}: tensor {a} vs ndarray {b}", solver.name());
        }
        assert_eq!(on_host.nfe, on_tensor.nfe);
    }
}

#[test]
fn host_tensor_conversions_round_trip() {
    let points = array![[1.5f32, -2.0], [0.25, 4.0], [3.0, 0.0]];
    let tensor = array_to_tensor(&points, Kind::Float, Device::Cpu);
    assert_eq!(tensor.size(), [3, 2]);
    assert_eq!(tensor_to_array(&tensor).unwrap(), points);
}

#[test]
fn network_integrates_forward_and_back() {
    let model = net(ModelConfig { precision: Precision::F64, ..ModelConfig::default() }, 5);
    let x0 = Tensor::randn([100, 2], (Kind::Double, Device::Cpu));
    let grid = TimeGrid::uniform(50).expect("grid");
    let forward = integrate(&model, TensorState(x0.shallow_clone()), &grid, Solver::Rk4, Record::Every(10))
        .expect("forward");
    assert_eq!(forward.trajectory.len(), 6);
    let back =
        integrate(&model, forward.state, &grid.reversed(), Solver::Rk4, Record::Nothing).expect("back");
    let error = (back.state.0 - &x0).abs().max().double_value(&[]);
    assert!(error < 1e-6, "round trip error {error}");
}

#[test]
fn checkpoint_loads_in_pytorch_with_the_documented_recipe() {
    let Some(python) = std::env::var_os("FLOWMATCH_TORCH_PYTHON") else {
        eprintln!("FLOWMATCH_TORCH_PYTHON unset (run through `cargo xtask test`): PyTorch check not run");
        return;
    };
    let dir = scratch("pytorch");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/load_checkpoint.py");
    let conditional =
        ModelConfig { condition: ConditionShape { classes: 3, values: 1 }, ..ModelConfig::default() };
    for (config, condition) in [
        (ModelConfig::default(), None),
        (
            ModelConfig {
                dim: 3,
                architecture: Architecture::Mlp(Mlp { activation: Activation::Silu, ..Mlp::default() }),
                time_embedding: TimeEmbedding::Sinusoidal { frequencies: 2 },
                ..ModelConfig::default()
            },
            None,
        ),
        // A label and a value, then the null condition of the same network.
        (conditional, Some([2.0f32, 0.5])),
        (conditional, None),
    ] {
        let model = net(config, 6);
        let path = dir.join("model.safetensors");
        save(&model, &path, &BTreeMap::new()).expect("save");
        let points: Vec<f32> = (0..2 * config.dim).map(|i| i as f32 * 0.37 - 1.0).collect();
        let x = Tensor::from_slice(&points).view([2, config.dim as i64]);
        let velocity = match condition {
            Some(row) => {
                let rows = Array2::from_shape_fn((2, 2), |(_, j)| row[j]);
                let features = Tensor::from_slice(&config.condition.encode(&rows, |_| false)).view([2, -1]);
                let t = Tensor::full([2, 1], 0.25, (Kind::Float, Device::Cpu));
                tch::no_grad(|| model.forward_conditioned(&x, &t, &features))
            }
            None => model.velocity_at(&x, 0.25),
        };
        let ours = Vec::<f32>::try_from(velocity.view([-1])).expect("floats");
        let mut command = std::process::Command::new(&python);
        command.arg(&script).arg(&path).args(points.iter().map(f32::to_string)).arg("0.25");
        if let Some([label, value]) = condition {
            command.arg("--condition").arg(format!("{label},{value}"));
        }
        let output = command.output().expect("python runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let theirs: Vec<f32> = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(|v| v.parse().expect("number"))
            .collect();
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-5, "ours {ours:?} vs PyTorch {theirs:?}");
        }
    }
    let _ = checkpoint::FORMAT;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn native_kernels_agree_with_libtorch() {
    for activation in Activation::ALL {
        let mlp = Mlp { activation, hidden: 40, ..Mlp::default() };
        let model = net(ModelConfig { dim: 3, ..ModelConfig::with_mlp(mlp) }, 8);
        let x = Tensor::randn([700, 3], (Kind::Float, Device::Cpu));
        let t = Tensor::rand([700, 1], (Kind::Float, Device::Cpu));
        let theirs = tch::no_grad(|| model.forward(&x, &t));
        let inputs = Vec::<f32>::try_from(Tensor::cat(&[&x, &t], 1).view([-1])).expect("floats");
        let mut workspace = flow_native::Workspace::with_kernel(2, runtime().kernel).expect("threads");
        let ours = workspace.forward(&model.to_native().expect("fits"), &inputs).expect("shapes");
        let theirs = Vec::<f32>::try_from(theirs.view([-1])).expect("floats");
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{activation:?}: largest difference {worst}");
    }
    // Host points through both paths of integrate_points: the native one, and libtorch's for f64.
    let model = net(ModelConfig::default(), 9);
    let start = tensor_to_array(&Tensor::randn([300, 2], (Kind::Float, Device::Cpu))).unwrap();
    let grid = TimeGrid::uniform(20).expect("grid");
    let native = flow_model::integrate_points(&model, runtime(), &start, &grid, Solver::Rk4, Record::Nothing)
        .expect("native");
    let on_tensors = integrate(
        &model,
        TensorState(array_to_tensor(&start, Kind::Float, Device::Cpu)),
        &grid,
        Solver::Rk4,
        Record::Nothing,
    )
    .expect("libtorch");
    let difference =
        (array_to_tensor(&native.points, Kind::Float, Device::Cpu) - on_tensors.state.0).abs().max();
    assert!(difference.double_value(&[]) < 1e-4, "RK4 × 20 end points differ by {difference}");
}

#[test]
fn native_kernels_refuse_what_they_cannot_run() {
    let double = net(ModelConfig { precision: Precision::F64, ..ModelConfig::default() }, 1);
    let message = double.to_native().expect_err("f64").to_string();
    assert!(message.contains("f64"), "{message}");
    let embedded = net(
        ModelConfig {
            time_embedding: TimeEmbedding::Sinusoidal { frequencies: 4 },
            ..ModelConfig::default()
        },
        1,
    );
    assert!(embedded.to_native().expect_err("embedding").to_string().contains("sinusoidal"));
    let mut model = net(ModelConfig::default(), 2);
    assert!(model.set_parameters(&[0.0; 3]).is_err());
}

/// The network, both kinds of solver and a checkpoint on `device` agree with the CPU.
fn network_solvers_and_checkpoints_agree_with_the_cpu(device: Device) {
    let cpu = net(ModelConfig::default(), 21);
    let mut on_device = VelocityNet::new(ModelConfig::default(), device).expect("a network on the device");
    on_device.copy_weights_from(&cpu).expect("same architecture");
    assert_eq!(on_device.device(), device);
    let x = Tensor::randn([512, 2], (Kind::Float, Device::Cpu));
    let gap = |a: &Tensor, b: &Tensor| (a - b.to_device(Device::Cpu)).abs().max().double_value(&[]);
    let velocity_gap = gap(&cpu.velocity_at(&x, 0.3), &on_device.velocity_at(&x.to_device(device), 0.3));
    assert!(velocity_gap < 1e-5, "{device:?}: velocities differ by {velocity_gap}");

    let grid = TimeGrid::uniform(20).expect("grid");
    for solver in [Solver::Rk4, Solver::Dopri5 { rtol: 1e-5, atol: 1e-6 }] {
        let here =
            integrate(&cpu, TensorState(x.shallow_clone()), &grid, solver, Record::Nothing).expect("cpu");
        let there = integrate(&on_device, TensorState(x.to_device(device)), &grid, solver, Record::Nothing)
            .expect("device");
        let end_gap = gap(&here.state.0, &there.state.0);
        assert!(end_gap < 1e-4, "{device:?} {}: end points differ by {end_gap}", solver.name());
    }
    let start = tensor_to_array(&x).expect("host points");
    let points =
        flow_model::integrate_points(&on_device, runtime(), &start, &grid, Solver::Rk4, Record::Nothing)
            .expect("host points through the device");
    let reference =
        flow_model::integrate_points(&cpu, runtime(), &start, &grid, Solver::Rk4, Record::Nothing)
            .expect("cpu");
    let worst = (&points.points - &reference.points).fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(worst < 1e-4, "{device:?}: integrate_points differs by {worst}");

    let dir = scratch(&format!("device-{}", flow_model::device_name(device)));
    let path = dir.join("model.safetensors");
    save(&on_device, &path, &BTreeMap::new()).expect("save from the device");
    let loaded = load(&path, device).expect("load onto the device");
    assert_eq!(loaded.net.device(), device);
    let x_there = x.to_device(device);
    assert!(loaded.net.velocity_at(&x_there, 0.6).equal(&on_device.velocity_at(&x_there, 0.6)));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
flow_model::test_device!(network_solvers_and_checkpoints_agree_with_the_cpu);

/// The stochastic samplers through an `Integrator`: the same seed gives the same samples, the
/// native kernels and libtorch on `device` agree (every draw is made on the host), noise 0 is
/// Euler exactly, and without the path and seed they are refused.
fn stochastic_samplers_agree_across_backends_and_repeat_with_their_seed(device: Device) {
    use flow_model::{Backend, Integrator, Runtime};
    use flow_path::AffinePath;

    let cpu = net(ModelConfig::default(), 31);
    let mut on_device = VelocityNet::new(ModelConfig::default(), device).expect("a network on the device");
    on_device.copy_weights_from(&cpu).expect("same architecture");
    let start = tensor_to_array(&Tensor::randn([400, 2], (Kind::Float, Device::Cpu))).expect("points");
    let grid = TimeGrid::uniform(12).expect("grid");
    let native = Runtime::requested(Backend::Native).expect("native kernels");
    let libtorch = Runtime::requested(Backend::Libtorch).expect("libtorch");
    for solver in [Solver::EulerMaruyama { noise: 1.5 }, Solver::Overshoot { noise: 1.0 }] {
        let sample = |net: &VelocityNet, runtime: Runtime, seed: u64| {
            let model = Integrator::new(net, runtime).expect("ready").with_noise(AffinePath::LINE, seed);
            model.integrate(&start, &grid, solver, Record::Nothing).expect("samples").points
        };
        let first = sample(&cpu, native, 5);
        assert_eq!(first, sample(&cpu, native, 5), "{solver:?}: the same seed, other samples");
        let other_seed = sample(&cpu, native, 6);
        assert!((&first - &other_seed).iter().any(|d| d.abs() > 1e-3), "{solver:?}: the seed is ignored");
        let there = sample(&on_device, libtorch, 5);
        let worst = (&first - &there).fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(worst < 1e-3, "{device:?} {solver:?}: native and libtorch differ by {worst}");
        let euler = Integrator::new(&on_device, libtorch)
            .expect("ready")
            .integrate(&start, &grid, Solver::Euler, Record::Nothing)
            .expect("euler")
            .points;
        let quiet = Integrator::new(&on_device, libtorch)
            .expect("ready")
            .with_noise(AffinePath::LINE, 5)
            .integrate(&start, &grid, solver.with_noise(0.0).expect("noise 0"), Record::Nothing)
            .expect("noise 0")
            .points;
        assert_eq!(quiet, euler, "{device:?} {solver:?}: noise 0 is not Euler");
        let refused =
            Integrator::new(&cpu, native).expect("ready").integrate(&start, &grid, solver, Record::Nothing);
        assert!(matches!(refused, Err(ModelError::Ode(flow_ode::OdeError::NeedsNoise { .. }))));
    }
}
flow_model::test_device!(stochastic_samplers_agree_across_backends_and_repeat_with_their_seed);

#[test]
fn sizes_are_counted_exactly_before_anything_is_allocated() {
    // Position, time features and condition features feed the first layer: 3 + 2·4 + (5 + 1) +
    // (2 + 1) with a sinusoidal embedding of 4 frequencies, 5 classes and 2 values.
    let config = ModelConfig {
        dim: 3,
        time_embedding: TimeEmbedding::Sinusoidal { frequencies: 4 },
        condition: ConditionShape { classes: 5, values: 2 },
        ..ModelConfig::default()
    };
    assert_eq!(config.input_width(), 3 + 8 + 6 + 3);
    assert_eq!(config.linear_shapes(), [(20, 64), (64, 64), (64, 64), (64, 3)]);
    assert_eq!(ModelConfig::default().input_width(), 3);
    // 2-D, 1 000 wide, a million hidden layers, a label of 3 classes (4 features): (2 + 1 + 4 + 1)
    // ·1 000 + 999 999·1 001·1 000 + 1 001·2 parameters, each kept four times (weights, gradient,
    // two moments) in f32: 16.0 TB.
    let huge = ModelConfig {
        architecture: Architecture::mlp(1_000, 1_000_000),
        condition: ConditionShape { classes: 3, values: 0 },
        ..ModelConfig::default()
    };
    let message = huge.validate().expect_err("too large").to_string();
    let expected =
        "a network of 1000999009002 parameters (with its gradient and optimiser moments) needs 16.0 TB";
    assert!(message.starts_with(expected), "{message}");
    for (config, problem) in [
        (ModelConfig { dim: 0, ..ModelConfig::default() }, "dimension"),
        (ModelConfig::with_mlp(Mlp { hidden: 0, ..Mlp::default() }), "hidden width"),
        (ModelConfig::with_mlp(Mlp { layers: 0, ..Mlp::default() }), "hidden layer"),
    ] {
        let message = config.validate().expect_err(problem).to_string();
        assert!(message.contains(problem), "{message}");
    }
    assert!(
        ModelConfig { dim: 1, architecture: Architecture::mlp(1, 1), ..ModelConfig::default() }
            .validate()
            .is_ok()
    );
}

#[test]
fn state_tensors_keep_their_kind_and_values_and_checkpoints_load_into_their_own_architecture() {
    let dir = scratch("state");
    // Training state: f32 and f64 values, i64 counters; other kinds are stored as f32.
    let path = dir.join("state.safetensors");
    let values = Tensor::from_slice(&[1.5f32, -2.0, 3.25, 0.0, 7.0, -0.5]).view([2, 3]);
    let doubles = Tensor::from_slice(&[0.1f64, 1e-300, -4.0]);
    let counters = Tensor::from_slice(&[7i64, i64::MAX]);
    let halves = Tensor::from_slice(&[1i32, -3]);
    checkpoint::write_tensors(
        &path,
        &[("values", &values), ("doubles", &doubles), ("counters", &counters), ("halves", &halves)],
    )
    .expect("writes");
    let read: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(&path).expect("reads").into_iter().collect();
    assert_eq!(read["values"].size(), [2, 3]);
    assert_eq!(read["values"].kind(), Kind::Float);
    assert_eq!(Vec::<f32>::try_from(read["values"].view([-1])).unwrap(), [1.5, -2.0, 3.25, 0.0, 7.0, -0.5]);
    assert_eq!(read["doubles"].kind(), Kind::Double);
    assert_eq!(Vec::<f64>::try_from(&read["doubles"]).unwrap(), [0.1, 1e-300, -4.0]);
    assert_eq!(read["counters"].kind(), Kind::Int64);
    assert_eq!(Vec::<i64>::try_from(&read["counters"]).unwrap(), [7, i64::MAX]);
    assert_eq!(read["halves"].kind(), Kind::Float);
    assert_eq!(Vec::<f32>::try_from(&read["halves"]).unwrap(), [1.0, -3.0]);

    // A checkpoint loads into a network of its own architecture, with its weights...
    let saved = net(ModelConfig::default(), 5);
    let model = dir.join("model.safetensors");
    save(&saved, &model, &BTreeMap::new()).expect("saves");
    let mut fresh = net(ModelConfig::default(), 6);
    load_into(&mut fresh, &model).expect("same architecture");
    assert!(fresh.flat_parameters().equal(saved.flat_parameters()));
    // ...and not into one of another dimension or activation, even with the same tensor shapes.
    for other in [
        ModelConfig::with_mlp(Mlp { activation: Activation::Silu, ..Mlp::default() }),
        ModelConfig { dim: 3, ..ModelConfig::default() },
    ] {
        let mut wrong = net(other, 7);
        assert!(matches!(load_into(&mut wrong, &model), Err(ModelError::Architecture { .. })), "{other:?}");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
