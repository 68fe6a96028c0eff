//! The command line, declared with clap. Values are parsed into the library's
//! types here, so a bad name or number is a usage error before any work starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use flow_data::{ConditionSpec, Dataset};
use flow_model::{Activation, DeviceChoice, TimeEmbedding};
use flow_ode::SolverKind;
use flow_options::NamedOption;
use flow_path::PathName;
use flow_train::{Backend, Coupling, LrSchedule, PairMode, Recipe, TimeSampling};

#[derive(Parser)]
#[command(name = "flowmatch", version, about = "Flow matching and rectified flow (reflow) on libtorch")]
#[command(propagate_version = true)]
pub struct Cli {
    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write samples of a built-in distribution to a file.
    #[command(
        after_help = "Examples:\n  flowmatch data --name spiral --n 1000 --seed 0 --out points.csv\n  flowmatch data --name gaussian --dim 8 --n 500 --out noise.npy"
    )]
    Data(DataArgs),
    /// Train a velocity field by flow matching.
    #[command(
        after_help = "Examples:\n  flowmatch train --target spiral --out runs/spiral\n  flowmatch train --data points.csv --steps 2000 --time-sampling logit-normal --out runs/mine\n  flowmatch train --target spiral --out runs/spiral --resume   # continue after Ctrl-C"
    )]
    Train(TrainArgs),
    /// Distil a trained model into straighter paths (rectified flow). The student trains on the
    /// straight line between each source and the teacher's end point, whatever path the teacher
    /// was trained on (cosine, vp, bridge, …): that is what rectifies.
    #[command(
        after_help = "Examples:\n  flowmatch reflow --teacher runs/spiral/model.safetensors --out runs/spiral-reflow\n  flowmatch reflow --teacher runs/spiral/model.safetensors --pairs pool:32768 --rounds 2 --out runs/r2\n  flowmatch reflow --teacher runs/spiral/model.safetensors --out runs/spiral-reflow --resume   # after Ctrl-C"
    )]
    Reflow(ReflowArgs),
    /// Generate samples (or invert target points with --reverse).
    #[command(
        after_help = "Examples:\n  flowmatch sample --model runs/spiral/model.safetensors --n 2000 --out samples.csv\n  flowmatch sample --model m.safetensors --solver euler --steps 1 --out one-step.npy\n  flowmatch sample --model m.safetensors --reverse --input points.csv --out latents.csv\n  flowmatch sample --model m.safetensors --trajectory 10 --out paths.csv"
    )]
    Sample(SampleArgs),
    /// Measure sample quality against the target the checkpoint names (or --target / --data):
    /// W2 and its noise floor, MMD, energy distance, straightness, and the NLL where the source
    /// has a density; prints JSON.
    #[command(
        after_help = "Examples:\n  flowmatch eval --model runs/spiral/model.safetensors\n  flowmatch eval --model m.safetensors --data points.csv --solver euler --steps 1"
    )]
    Eval(EvalArgs),
    /// Log-density of points under a model (the change of variables, integrated back to t = 0).
    #[command(
        after_help = "Examples:\n  flowmatch logprob --model runs/spiral/model.safetensors --input points.csv --out logp.csv\n  flowmatch logprob --model m.safetensors --input x.npy --probes 16 --out logp.csv   # Hutchinson, with standard errors"
    )]
    Logprob(LogprobArgs),
    /// Plot a model's samples (.png) or flow (.gif), or a point file (.png).
    #[command(
        after_help = "Examples:\n  flowmatch plot --model m.safetensors --out flow.gif\n  flowmatch plot --model m.safetensors --solver rk4 --steps 20 --out samples.png\n  flowmatch plot --input points.csv --out points.png"
    )]
    Plot(PlotArgs),
    /// Train what the post trained and write every figure and a report.
    #[command(
        after_help = "Examples:\n  flowmatch reproduce                 # the post's settings, into runs/figures\n  flowmatch reproduce --out assets/figures --online-reflow   # the committed figures\n  flowmatch reproduce --experiment c2ot   # C2OT's table, ours beside theirs (about an hour on 2 cores)\n  flowmatch reproduce --quick --out /tmp/figures"
    )]
    Reproduce(ReproduceArgs),
    /// Time training and sampling against the PyTorch version of the post.
    #[command(
        after_help = "Examples:\n  flowmatch bench --python .venv/bin/python\n  flowmatch bench --quick"
    )]
    Bench(BenchArgs),
    /// List the CPU's native kernels and the GPUs libtorch sees.
    Devices(DevicesArgs),
    /// Time CUDA against this CPU on large batches, a teacher pool and a million samples.
    #[command(
        after_help = "Examples:\n  flowmatch gpu-bench\n  flowmatch gpu-bench --quick --out /tmp/gpu.md"
    )]
    GpuBench(GpuBenchArgs),
}

/// A flag's help line that ends with every form its option type takes.
fn one_of<T: NamedOption>(lead: &str) -> String {
    format!("{lead}: {}.", T::forms().join(", "))
}

fn ema_decay(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x > 0.0 && x < 1.0 => Ok(x),
        _ => Err(format!("`{text}` must be a decay strictly between 0 and 1")),
    }
}

fn positive_float(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("`{text}` must be a positive finite number")),
    }
}

fn non_negative_float(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("`{text}` must be a finite number, at least 0")),
    }
}

fn unit_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..1.0).contains(&x) => Ok(x),
        _ => Err(format!("`{text}` must be a fraction in [0, 1)")),
    }
}

fn finite_float(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("`{text}` must be a finite number")),
    }
}

fn positive() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

/// Options shared by every command that runs a network.
#[derive(Args, Clone)]
pub struct RuntimeArgs {
    #[arg(long, default_value = "auto", help = one_of::<DeviceChoice>("Where the network runs (auto: CUDA when present)"))]
    pub device: DeviceChoice,
    #[arg(long, default_value = "auto", help = one_of::<Backend>("What computes the network: its training steps, samples, densities and a reflow teacher's integrations (auto: the native CPU kernels where they apply and a SIMD kernel is there, else libtorch; FLOWMATCH_KERNEL picks the native kernel)"))]
    pub backend: Backend,
    /// CPU threads for libtorch and the native kernels (default: libtorch's choice). Results are reproducible for a fixed count.
    #[arg(long, value_parser = positive())]
    pub threads: Option<usize>,
    /// Seed for every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct DataArgs {
    #[arg(long, help = one_of::<Dataset>("Built-in distribution"))]
    pub name: Dataset,
    /// Number of points to draw.
    #[arg(long, default_value_t = 1000, value_parser = positive())]
    pub n: usize,
    /// Dimension (the Gaussian only; the others are 2-D).
    #[arg(long, default_value_t = 2, value_parser = positive())]
    pub dim: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file, .csv or .npy.
    #[arg(long)]
    pub out: PathBuf,
}

/// Where the points to learn (or compare with) come from.
#[derive(Args, Clone)]
#[group(required = false, multiple = false)]
pub struct TargetArgs {
    #[arg(long, help = one_of::<Dataset>("Built-in target distribution"))]
    pub target: Option<Dataset>,
    /// Your own points: .csv (optional header) or .npy (2-D float32/float64), any dimension.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, conflicts_with = "source_data", help = one_of::<Dataset>("Built-in source distribution [default: gaussian, in the data's dimension]"))]
    pub source: Option<Dataset>,
    /// Your own source points (.csv or .npy, checked as --data is): a flow from one data set to another.
    #[arg(long)]
    pub source_data: Option<PathBuf>,
    /// Training steps (one minibatch each).
    #[arg(long, default_value_t = 10_000, value_parser = positive())]
    pub steps: usize,
    /// Pairs per training step.
    #[arg(long, default_value_t = 2048, value_parser = positive())]
    pub batch_size: usize,
    #[arg(long, default_value = "independent", help = one_of::<Coupling>("How sources and targets are paired in a minibatch (ot: exact optimal transport, OT-CFM; sinkhorn[:EPS]: pairs drawn from the entropic plan, EPS 0.05 by default, relative to the mean squared distance over the batch's pairs; sinkhorn-abs:REG: the same with an absolute REG on squared distances, as POT and torchcfm take it (SB-CFM: REG = 2σ²); c2ot[:R]: condition-aware transport, C2OT: labels must match, continuous conditions weighted so a share R of pairings stays open, 0.05 by default)"))]
    pub coupling: Coupling,
    /// Train a conditional model on this condition of each target point (repeatable): `label`
    /// (a built-in set's natural label), `coordN` (coordinate N as a value), `COLUMN` or
    /// `COLUMN:label` (a column of the --data CSV, taken out of the coordinates), `FILE.npy[:label]`
    /// (one value per --data point).
    #[arg(long = "condition", value_name = "CONDITION")]
    pub conditions: Vec<ConditionSpec>,
    /// Share of rows trained on the learned null condition, so that `sample --guidance` can mix
    /// conditional and unconditional velocities (classifier-free guidance). Conditional models only;
    /// 0.3 measured best on 8gaussians (the conditional model as good as at 0.1, the unconditional one better).
    /// [default: 0.3]
    #[arg(long, value_parser = unit_fraction)]
    pub condition_dropout: Option<f64>,
    /// Rows per optimal-transport plan [default: the batch size]. Smaller: each batch is planned in
    /// pieces; larger: one plan serves several consecutive batches (C2OT plans 1 024 for batches of 256).
    #[arg(long, value_parser = positive())]
    pub ot_batch: Option<usize>,
    #[command(flatten)]
    pub optimiser: OptimiserArgs,
    #[arg(long, default_value = "uniform", help = one_of::<TimeSampling>("How training times are drawn (warp: s = 0.5)"))]
    pub time_sampling: TimeSampling,
    #[arg(long, default_value = "linear", help = one_of::<PathName>("The probability path x_t and its target velocity (linear: x_t = (1 − t)x0 + t·x1, target x1 − x0, I-CFM and rectified flow; cosine: x_t = cos(πt/2)x0 + sin(πt/2)x1, torchcfm's variance-preserving CFM; vp[:BMIN,BMAX]: flow_matching's VPScheduler, 0.1,20 by default; polynomial:N: x_t = (1 − tᴺ)x0 + tᴺ·x1; target:SMIN: Lipman et al.'s flow matching with σ_min, x_t = t·x1 + (1 − (1 − SMIN)t)x0, Gaussian source only; bridge: the Brownian bridge of Schrödinger-bridge CFM, x_t = (1 − t)x0 + t·x1 + σ√(t(1 − t))ε, with --sigma σ > 0 and, for SB-CFM, --coupling sinkhorn)"))]
    pub path: PathName,
    /// Noise scale σ of the path: x_t gains σ·ε, ε ~ N(0, I) fresh every step (torchcfm's I-CFM σ; 0: none); for --path bridge, the bridge's σ.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_float)]
    pub sigma: f64,
    /// Learn SF2M's score instead of the velocity: the network s regresses ‖λ_t·s + ε‖²
    /// (λ_t = 2σ_t/σ²), so s = (σ²/2)·∇log p_t. Needs a noisy path (--path bridge, or
    /// --sigma > 0). Train it with the flow's settings and seed (the same batches), then
    /// `sample --model FLOW --score SCORE` integrates the SDE dx = [v + s] dt + σ dW.
    #[arg(long)]
    pub score: bool,
    /// Units per hidden layer of the velocity MLP.
    #[arg(long, default_value_t = 64, value_parser = positive())]
    pub hidden: usize,
    /// Hidden layers of the velocity MLP.
    #[arg(long, default_value_t = 3, value_parser = positive())]
    pub layers: usize,
    #[arg(long, default_value = "gelu", help = one_of::<Activation>("Hidden-layer activation"))]
    pub activation: Activation,
    #[arg(long, default_value = "raw", help = one_of::<TimeEmbedding>("How time enters the network (raw: t appended, the post's)"))]
    pub time_embedding: TimeEmbedding,
    /// Save a checkpoint every N steps (0: only at the end).
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: usize,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Start afresh in an --out that holds a run, replacing its files.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Run directory: model.safetensors, losses.csv, run.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// How the weights are updated; shared by `train` and `reflow`.
#[derive(Args)]
pub struct OptimiserArgs {
    #[arg(long, default_value = "tuned", help = one_of::<Recipe>("Learning rates for the budget (tuned: ours, flow matching 8e-3 with cosine decay and reflow a constant 5e-3, much closer to the target, see README; post: Adam at a constant 1e-3, the post's)"))]
    pub recipe: Recipe,
    /// Learning rate [default: the recipe's].
    #[arg(long, value_parser = positive_float)]
    pub lr: Option<f64>,
    #[arg(long, help = one_of::<LrSchedule>("Learning-rate schedule (cosine decays to zero at the last step) [default: the recipe's]"))]
    pub lr_schedule: Option<LrSchedule>,
    /// Publish an exponential moving average of the weights with this decay (e.g. 0.999).
    #[arg(long, value_parser = ema_decay)]
    pub ema: Option<f64>,
    /// AdamW's decoupled weight decay λ, as torch.optim.AdamW: each step shrinks the weights by
    /// 1 − lr·λ before Adam's update (torchcfm's 2-D benchmark: 1e-5; 0: Adam).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_float)]
    pub weight_decay: f64,
}

impl OptimiserArgs {
    /// The learning rate and schedule: flags where given, else the recipe's `defaults`.
    pub fn rate(&self, (lr, schedule): (f64, LrSchedule)) -> (f64, LrSchedule) {
        (self.lr.unwrap_or(lr), self.lr_schedule.unwrap_or(schedule))
    }
}

#[derive(Args)]
pub struct ReflowArgs {
    /// The trained model whose flow is distilled.
    #[arg(long)]
    pub teacher: PathBuf,
    #[arg(long, default_value = "pool", help = one_of::<PairMode>("Where reflow pairs come from (pool:N: N teacher pairs made once, 16384 for pool, as good in one step and many times faster; online: teacher targets for every batch, the post's)"))]
    pub pairs: PairMode,
    #[arg(long, default_value = "rk4", help = one_of::<SolverKind>("The teacher's solver"))]
    pub teacher_solver: SolverKind,
    /// Steps of the teacher's solver per pair.
    #[arg(long, default_value_t = 20, value_parser = positive())]
    pub teacher_steps: usize,
    /// Training steps of each student (one minibatch each).
    #[arg(long, default_value_t = 1000, value_parser = positive())]
    pub steps: usize,
    /// Pairs per training step.
    #[arg(long, default_value_t = 2048, value_parser = positive())]
    pub batch_size: usize,
    #[command(flatten)]
    pub optimiser: OptimiserArgs,
    #[arg(long, default_value = "warp", help = one_of::<TimeSampling>("How training times are drawn (warp: s = 0.5, the post's)"))]
    pub time_sampling: TimeSampling,
    /// Rounds of reflow: each student teaches the next.
    #[arg(long, default_value_t = 1, value_parser = positive())]
    pub rounds: usize,
    /// Start the student from fresh weights instead of the teacher's.
    #[arg(long)]
    pub fresh: bool,
    /// Continue the run in --out (same settings) from its last checkpoint.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Start afresh in an --out that holds a run, replacing its files.
    #[arg(long)]
    pub force: bool,
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: usize,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Run directory of the student: model.safetensors, losses.csv, run.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// Solver choice shared by sample, eval and plot.
#[derive(Args, Clone)]
pub struct SolverArgs {
    #[arg(long, default_value = "rk4", help = one_of::<SolverKind>("Integration method"))]
    pub solver: SolverKind,
    /// Steps of a fixed-step solver; dopri5 picks its own, starting from a first step of 1/max(STEPS, 10)
    /// (so STEPS can change its result within its tolerances).
    #[arg(long, default_value_t = 20, value_parser = positive())]
    pub steps: usize,
    /// dopri5 relative tolerance.
    #[arg(long, default_value_t = flow_ode::Solver::DEFAULT_RTOL, value_parser = positive_float)]
    pub rtol: f64,
    /// dopri5 absolute tolerance.
    #[arg(long, default_value_t = flow_ode::Solver::DEFAULT_ATOL, value_parser = positive_float)]
    pub atol: f64,
    /// The stochastic solvers' noise G (0: Euler exactly): euler-maruyama's diffusion
    /// g(t)² = G²·σ_t (σ_t the path's noise scale at t), overshoot's overshoot factor c.
    /// Needs a model from the Gaussian source with independent pairs; the
    /// noise is drawn from --seed. [default: 2 for euler-maruyama, 1 for overshoot]
    #[arg(long, value_name = "G", allow_hyphen_values = true)]
    pub noise: Option<f64>,
}

#[derive(Args)]
pub struct SampleArgs {
    /// A trained model: the model.safetensors of a run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Number of samples (ignored with --input).
    #[arg(long, default_value_t = 2000, value_parser = positive())]
    pub n: usize,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Integrate from t = 1 back to t = 0: map target-space points (--input) to the source.
    #[arg(long, requires = "input")]
    pub reverse: bool,
    /// Start from these points instead of fresh source samples.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write the path, every K-th step, instead of the end points (columns t,particle,coord0,…).
    #[arg(long, value_parser = positive())]
    pub trajectory: Option<usize>,
    #[command(flatten)]
    pub guidance: GuidanceArgs,
    /// Follow another scheduler's paths than the model was trained on (flow_matching's
    /// ScheduleTransformedModel): the same source and data marginals, other paths between, e.g.
    /// a cosine-trained model on straight lines. linear, cosine, vp, vp:BMIN,BMAX or polynomial:N;
    /// the model's own path must be one of them, without noise [default: the model's own].
    #[arg(long, value_name = "SCHEDULER")]
    pub path: Option<flow_path::Scheduler>,
    /// SF2M: a score network trained with `train --score` on the model's path (and its
    /// settings and seed); with --solver euler-maruyama, integrates dx = [v + G²·s] dt + G·σ dW
    /// (--noise G, 1 by default: the Schrödinger bridge's SDE), every step noisy.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["path", "reverse"])]
    pub score: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Output file, .csv or .npy.
    #[arg(long)]
    pub out: PathBuf,
}

/// Conditions of the points a conditional model samples, and its guidance.
#[derive(Args, Clone)]
pub struct GuidanceArgs {
    /// The condition of every sample: a label `K`, a value `V`, or `K,V,…` in the order the model
    /// takes them [default: none, the unconditional model learned by condition dropout].
    #[arg(long, value_name = "CONDITION")]
    pub condition: Option<String>,
    /// Classifier-free guidance weight w: v(∅) + w·(v(c) − v(∅)); 1 is the plain conditional
    /// model, 0 the unconditional one, above 1 pushes samples further towards the condition.
    #[arg(long, default_value_t = 1.0, requires = "condition", value_parser = finite_float)]
    pub guidance: f64,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A trained model: the model.safetensors of a run directory.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Points per draw: generated samples, and target points they are compared with.
    #[arg(long, default_value_t = 2000, value_parser = positive())]
    pub n: usize,
    #[command(flatten)]
    pub solver: SolverArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Args)]
pub struct LogprobArgs {
    /// A trained model: the model.safetensors of a run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Points to score: .csv or .npy, the model's dimension.
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long, default_value = "dopri5", help = one_of::<SolverKind>("Integration method"))]
    pub solver: SolverKind,
    /// Steps of a fixed-step solver; dopri5 picks its own, starting from a first step of 1/max(STEPS, 10)
    /// (so STEPS can change its result within its tolerances).
    #[arg(long, default_value_t = 20, value_parser = positive())]
    pub steps: usize,
    /// dopri5 relative tolerance.
    #[arg(long, default_value_t = flow_ode::Solver::DEFAULT_RTOL, value_parser = positive_float)]
    pub rtol: f64,
    /// dopri5 absolute tolerance.
    #[arg(long, default_value_t = flow_ode::Solver::DEFAULT_ATOL, value_parser = positive_float)]
    pub atol: f64,
    /// Estimate the divergence with this many Rademacher probes per point (Hutchinson) and
    /// write standard errors [default: exact up to 32 dimensions, one probe above].
    #[arg(long, value_parser = positive())]
    pub probes: Option<usize>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Output file, .csv (column log_prob, and standard_error with several --probes) or .npy.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct PlotArgs {
    /// A model: .png shows its samples, .gif animates its flow.
    #[arg(long, conflicts_with = "input")]
    pub model: Option<PathBuf>,
    /// A point file (2-D) to scatter-plot.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Points drawn and carried by the model.
    #[arg(long, default_value_t = 1000, value_parser = positive())]
    pub n: usize,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// A labelled model without --condition plots one panel per class.
    #[command(flatten)]
    pub guidance: GuidanceArgs,
    /// Output image: .png or .gif (animation, models only).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// What `reproduce` reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// The post: every figure, and a report with measured quality.
    Post,
    /// C2OT's unconditional 8gaussians → moons table (W2² of flow matching, OT, Sinkhorn, reflow).
    C2ot,
    /// C2OT's conditional table: moon label and target x, each by flow matching, OT and C2OT.
    C2otConditional,
    /// Tong et al.'s 2-D benchmark (TorchCFM): W2 and path energy of OT-CFM, I-CFM, FM, SB-CFM, RF
    /// and ours on their four tasks and protocol (hours for all five seeds; Ctrl-C writes the table
    /// so far, and a rerun continues).
    #[value(name = "torchcfm-2d")]
    Torchcfm2d,
}

#[derive(Args)]
pub struct ReproduceArgs {
    /// Which study: the post's figures, or C2OT's published table (ours beside theirs, c2ot.md).
    #[arg(long, value_enum, default_value_t = Experiment::Post)]
    pub experiment: Experiment,
    /// Everything at a small scale (seconds): for checks, not for the figures.
    #[arg(long)]
    pub quick: bool,
    /// Train again even if checkpoints from an earlier run are there.
    #[arg(long)]
    pub retrain: bool,
    /// Also reflow with the post's online sampler (teacher targets for every batch, ≈40 s on
    /// 2 cores) and compare it with the pooled reflow in the report.
    #[arg(long)]
    pub online_reflow: bool,
    /// Where figures, checkpoints and the report go.
    /// (runs/ is git-ignored: a checkout stays clean; the committed figures are made with
    /// --out assets/figures --online-reflow.)
    #[arg(long, default_value = "runs/figures")]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Args)]
pub struct DevicesArgs {}

#[derive(Args)]
pub struct GpuBenchArgs {
    /// Fewer steps and samples: a smoke run of the benchmark itself.
    #[arg(long)]
    pub quick: bool,
    /// Where the table goes (Markdown).
    #[arg(long, default_value = "assets/figures/gpu.md")]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Args)]
pub struct BenchArgs {
    /// A Python with torch 2.11 for the PyTorch side (cargo xtask bench passes the provisioned one).
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Fewer steps: a smoke run of the benchmark itself.
    #[arg(long)]
    pub quick: bool,
    /// Where the table goes (Markdown).
    #[arg(long, default_value = "assets/figures/bench.md")]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}
