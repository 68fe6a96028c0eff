//! `sample`, `eval`, `logprob` and `plot`: a trained model's points, quality, densities and pictures.

use std::path::Path;

use flow_data::{files, tables};
use flow_eval::QualityProbe;
use flow_eval::likelihood::{self, Divergence};
use flow_model::{Integrator, PointsSolution};
use flow_ode::{Record, Solver, TimeGrid};
use ndarray::Array2;

use super::{
    check_dimension, check_points_budget, deterministic, guide, load_model, load_score_model, ready_for,
    runtime, solver, target,
};
use crate::cli::{EvalArgs, LogprobArgs, PlotArgs, SampleArgs};
use crate::error::{CliError, Result};

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase()
}

pub fn sample(args: SampleArgs) -> Result<()> {
    files::check_output_path(&args.out)?;
    let inputs: Vec<&Path> = [Some(args.model.as_path()), args.input.as_deref(), args.score.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    files::check_not_an_input(&args.out, &inputs)?;
    let mut solver = solver(&args.solver)?;
    if args.score.is_some() {
        if solver.kind() != flow_ode::SolverKind::EulerMaruyama {
            return Err(CliError::usage(format!(
                "--score drives the SDE, which --solver euler-maruyama integrates (not {})",
                solver.name()
            )));
        }
        if args.guidance.condition.is_some() {
            return Err(CliError::usage("--score samples unconditional flows only; drop --condition"));
        }
        if args.solver.noise.is_none() {
            // The Schrödinger bridge's own SDE: g = σ.
            solver = solver.with_noise(1.0)?;
        }
    }
    if args.reverse && solver.is_stochastic() {
        return Err(CliError::usage(format!(
            "--reverse with --solver {}: the stochastic samplers run from the source to the data only",
            solver.name()
        )));
    }
    let (device, runtime) = runtime(&args.runtime)?;
    let checkpoint = load_model(&args.model, device)?;
    let dim = checkpoint.net.config().dim;
    let mut model = Integrator::new(&checkpoint.net, runtime)?;
    if let Some(sampled) = args.path {
        model = model.with_schedule(schedule_change(&checkpoint.metadata.path, sampled)?);
    }
    let model = match &args.score {
        Some(path) => {
            let score = load_score_model(path, device)?;
            if score.metadata.path != checkpoint.metadata.path {
                return Err(CliError::runtime(format!(
                    "{} was trained on the path `{}`, the flow on `{}`",
                    path.display(),
                    score.metadata.path.describe(),
                    checkpoint.metadata.path.describe()
                )));
            }
            model.with_learned_score(&score.net, runtime, (checkpoint.metadata.path, args.runtime.seed))?
        }
        None => ready_for(model, solver, &checkpoint, args.runtime.seed)?,
    };
    let start = match &args.input {
        Some(path) => {
            let points = files::read_points(path)?;
            check_dimension(points.ncols(), dim, &format!("{}", path.display()))?;
            points
        }
        None => {
            // The solver keeps several states of every point (dopri5: eight).
            check_points_budget("sampling", args.n, dim, 8)?;
            let source = checkpoint.source()?;
            if let flow_train::PointsRef::File(path) = &checkpoint.metadata.source {
                eprintln!("drawing {} starting points from the source data file {}", args.n, path.display());
            }
            source.draw(args.n, &mut flow_data::seeded_rng(args.runtime.seed))?
        }
    };
    let mut grid = TimeGrid::uniform(args.solver.steps)?;
    if args.reverse {
        grid = grid.reversed();
    }
    if let Some(every) = args.trajectory {
        // Every recorded state, then the table of them with two more columns (t, particle).
        let states = args.solver.steps / every + 2;
        check_points_budget("a trajectory of", start.nrows(), dim + 2, 2 * states)?;
    }
    let record = args.trajectory.map_or(Record::Nothing, Record::Every);
    let solved = match guide(&checkpoint, &args.guidance, start.nrows())? {
        Some(guide) => model.integrate_guided(&start, &guide, &grid, solver, record)?,
        None => model.integrate(&start, &grid, solver, record)?,
    };
    let table = if args.trajectory.is_some() {
        let table = tables::trajectory_table(&solved.trajectory);
        files::write_table(&args.out, &table, &tables::trajectory_names(dim))?;
        table
    } else {
        files::write_points(&args.out, &solved.points)?;
        solved.points
    };
    eprintln!(
        "wrote {} rows to {} ({} velocity evaluation{} per point)",
        table.nrows(),
        args.out.display(),
        solved.nfe,
        if solved.nfe == 1 { "" } else { "s" }
    );
    Ok(())
}

/// The change from the scheduler `trained` was trained on to `sampled`: only between noiseless
/// paths, whose marginals are the schedulers' own.
fn schedule_change(
    trained: &flow_path::AffinePath,
    sampled: flow_path::Scheduler,
) -> Result<flow_path::ScheduleChange> {
    if trained.sigma > 0.0 {
        return Err(CliError::usage(format!(
            "--path {sampled}: the model was trained on the noisy path `{}`, whose marginals no scheduler shares",
            trained.describe()
        )));
    }
    Ok(flow_path::ScheduleChange::new(trained.scheduler, sampled)?)
}

/// Fewer points than this make the noise floor and MMD meaningless (MMD's
/// unbiased estimate divides by n(n − 1)).
const EVAL_MIN_POINTS: usize = 10;

/// What `eval` prints: the quality fields, what they were measured against, then the
/// likelihood of target points.
#[derive(serde::Serialize)]
struct EvalReport {
    #[serde(flatten)]
    quality: flow_eval::Quality,
    /// What the samples were compared with: a built-in set's fresh draws, or a data file's
    /// points resampled (the model's own training points unless the file is held out).
    reference: String,
    /// Independent draws averaged into the W2 noise floor (the W2 itself is one draw).
    floor_draws: usize,
    /// `null` when the model's source has no closed-form density.
    nll: Option<likelihood::Nll>,
}

pub fn eval(args: EvalArgs) -> Result<()> {
    if args.n < EVAL_MIN_POINTS {
        return Err(CliError::usage(format!(
            "--n {} is too few points to measure quality (at least {EVAL_MIN_POINTS})",
            args.n
        )));
    }
    let (device, runtime) = runtime(&args.runtime)?;
    let checkpoint = load_model(&args.model, device)?;
    let dim = checkpoint.net.config().dim;
    // The probe's four source and four target draws, and a solver's states of each sample.
    check_points_budget("evaluating on", args.n, dim, 16)?;
    let reference = match (&args.target.target, &args.target.data, &checkpoint.metadata.target) {
        (Some(dataset), _, _) => format!("{dataset}: fresh draws"),
        (None, Some(path), _) => format!("{}: its points resampled", path.display()),
        (None, None, Some(flow_train::PointsRef::File(path))) => format!(
            "{}: its points resampled, the points the model trained on (give --data HELDOUT for held-out ones)",
            path.display()
        ),
        (None, None, Some(recorded)) => format!("{}: fresh draws", recorded.label()),
        (None, None, None) => String::new(),
    };
    let target = match target(&args.target)? {
        Some(target) => target,
        None => checkpoint.target()?.ok_or_else(|| {
            CliError::usage("this checkpoint does not name its target: give --target NAME or --data FILE")
        })?,
    };
    check_dimension(target.dim(), dim, "the target")?;
    let probe = QualityProbe::new(&checkpoint.source()?, &target, args.n, args.runtime.seed)?;
    let solver = solver(&args.solver)?;
    let model =
        ready_for(Integrator::new(&checkpoint.net, runtime)?, solver, &checkpoint, args.runtime.seed)?;
    let quality = probe.measure(&model, solver, args.solver.steps)?;
    // The likelihood of the probe's first target draw: points the model never trained on.
    let nll = match checkpoint.metadata.source_dataset() {
        Some(source) => likelihood::nll(&model, source, &probe.targets[0])?,
        None => None,
    };
    let report = EvalReport { quality, reference, floor_draws: flow_eval::FLOOR_DRAWS, nll };
    let text = serde_json::to_string_pretty(&report).map_err(|e| CliError::runtime(e.to_string()))?;
    super::print_out(&format!("{text}\n"))?;
    Ok(())
}

pub fn logprob(args: LogprobArgs) -> Result<()> {
    let solver = deterministic(
        Solver::new(args.solver, args.rtol, args.atol)?,
        "logprob follows the probability-flow ODE",
    )?;
    files::check_output_path(&args.out)?;
    files::check_not_an_input(&args.out, &[&args.input, &args.model])?;
    let (device, runtime) = runtime(&args.runtime)?;
    let checkpoint = load_model(&args.model, device)?;
    let dim = checkpoint.net.config().dim;
    let points = files::read_points(&args.input)?;
    check_dimension(points.ncols(), dim, &args.input.display().to_string())?;
    let divergence = Divergence::for_dimension(dim, args.probes, args.runtime.seed);
    let model = Integrator::new(&checkpoint.net, runtime)?;
    let found = likelihood::log_density(
        &model,
        checkpoint.metadata.source_dataset().ok_or_else(|| {
            CliError::runtime("the model's source is a data file, which has no density to start from")
        })?,
        &points,
        (solver, args.steps),
        divergence,
    )?;
    let mut columns = vec![&found.log_prob];
    let mut names = vec!["log_prob".to_owned()];
    if let Some(errors) = &found.standard_error {
        columns.push(errors);
        names.push("standard_error".to_owned());
    }
    let table = Array2::from_shape_fn((points.nrows(), columns.len()), |(i, j)| columns[j][i] as f32);
    files::write_table(&args.out, &table, &names)?;
    let mean = found.log_prob.iter().sum::<f64>() / found.log_prob.len().max(1) as f64;
    let how = match (divergence, &found.standard_error) {
        (Divergence::Exact, _) => "exact divergence".to_owned(),
        (Divergence::Hutchinson { probes, .. }, Some(errors)) => format!(
            "Hutchinson, {probes} probes, mean standard error {:.4}",
            errors.iter().sum::<f64>() / errors.len().max(1) as f64
        ),
        (Divergence::Hutchinson { probes, .. }, None) => format!("Hutchinson, {probes} probe"),
    };
    eprintln!(
        "wrote {} log-densities to {} (mean {mean:.4} nats; {how}; {} evaluations per point)",
        points.nrows(),
        args.out.display(),
        found.nfe
    );
    Ok(())
}

pub fn plot(args: PlotArgs) -> Result<()> {
    let kind = extension(&args.out);
    if kind != "png" && kind != "gif" {
        return Err(CliError::usage(format!("{}: plots are written as .png or .gif", args.out.display())));
    }
    files::check_writable(&args.out)?;
    let inputs: Vec<&Path> = [args.model.as_deref(), args.input.as_deref()].into_iter().flatten().collect();
    files::check_not_an_input(&args.out, &inputs)?;
    match (&args.model, &args.input) {
        (None, Some(input)) => {
            if kind == "gif" {
                return Err(CliError::usage("an animation needs --model; a point file plots as .png"));
            }
            let points = files::read_points(input)?;
            if points.ncols() != 2 {
                return Err(CliError::runtime(format!(
                    "plots need 2-D points; {} holds {}-dimensional ones",
                    input.display(),
                    points.ncols()
                )));
            }
            let range = flow_viz::fitting_range(&[&points]);
            let image = flow_viz::scatter_within(&points, &input.display().to_string(), range)?;
            flow_viz::save_png(&args.out, &image)?;
        }
        (Some(model), None) => {
            let (device, runtime) = runtime(&args.runtime)?;
            let checkpoint = load_model(model, device)?;
            if checkpoint.net.config().dim != 2 {
                return Err(CliError::runtime(format!(
                    "plots need 2-D data; {} is {}-dimensional",
                    model.display(),
                    checkpoint.net.config().dim
                )));
            }
            if kind == "gif" {
                // Every frame and every recorded state is held until the GIF is encoded.
                let (width, height) = flow_viz::square_canvas_size();
                let frame = u128::from(width) * u128::from(height) * 3 + args.n as u128 * 8;
                let what = format!("an animation of {} frames", args.solver.steps + 1);
                flow_data::budget::check_allocation(&what, (args.solver.steps as u128 + 1) * frame, 1)?;
            }
            check_points_budget("plotting", args.n, 2, 8)?;
            let start = checkpoint.source()?.draw(args.n, &mut flow_data::seeded_rng(args.runtime.seed))?;
            let grid = TimeGrid::uniform(args.solver.steps)?;
            let record = if kind == "gif" { Record::Every(1) } else { Record::Nothing };
            let solver = solver(&args.solver)?;
            let model = ready_for(
                Integrator::new(&checkpoint.net, runtime)?,
                solver,
                &checkpoint,
                args.runtime.seed,
            )?;
            let classes = checkpoint.net.config().condition.classes;
            if kind == "png" && args.guidance.condition.is_none() && classes > 0 {
                let image = class_panels(&model, &start, (&grid, solver), classes)?;
                flow_viz::save_png(&args.out, &image)?;
                eprintln!("wrote {}", args.out.display());
                return Ok(());
            }
            let solved: PointsSolution = match guide(&checkpoint, &args.guidance, start.nrows())? {
                Some(guide) => model.integrate_guided(&start, &guide, &grid, solver, record)?,
                None => model.integrate(&start, &grid, solver, record)?,
            };
            // One window for every frame: the start and the end, whichever reaches further.
            let range = flow_viz::fitting_range(&[&start, &solved.points]);
            if kind == "gif" {
                let frames = solved
                    .trajectory
                    .iter()
                    .map(|(t, x)| flow_viz::scatter_within(x, &format!("t = {t:.2}"), range))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                flow_viz::save_gif(&args.out, &frames, 5)?;
            } else {
                let title = match &args.guidance.condition {
                    Some(condition) => {
                        format!("condition {condition}, {} × {}", args.solver.solver, args.solver.steps)
                    }
                    None => format!("{} × {}", args.solver.solver, args.solver.steps),
                };
                flow_viz::save_png(&args.out, &flow_viz::scatter_within(&solved.points, &title, range)?)?;
            }
        }
        _ => return Err(CliError::usage("say what to plot: --model FILE or --input FILE")),
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Panels per row of a class grid.
const PANELS_PER_ROW: usize = 4;

/// One scatter panel per class of a labelled model: samples from `start` with that label.
fn class_panels(
    model: &Integrator,
    start: &Array2<f32>,
    (grid, solver): (&TimeGrid, Solver),
    classes: usize,
) -> Result<flow_viz::RgbImage> {
    let shape = model.net().config().condition;
    let mut label_row = vec![0.0f32; shape.columns()];
    let samples = (0..classes)
        .map(|class| {
            label_row[0] = class as f32;
            // Any continuous values stay at 0 (with the label, the panel is per class).
            let guide = flow_model::Guide::repeated(shape, &label_row, start.nrows(), 1.0)?;
            Ok(model.integrate_guided(start, &guide, grid, solver, Record::Nothing)?.points)
        })
        .collect::<Result<Vec<_>>>()?;
    // One scale for every panel, wide enough for the samples (at least the post's ±3, at most ±50).
    let reach = samples.iter().flat_map(|s| s.iter()).fold(3.0f32, |a, &b| a.max(b.abs())).min(50.0);
    let range = f64::from(reach.ceil());
    let panels = samples
        .iter()
        .enumerate()
        .map(|(class, points)| Ok(flow_viz::scatter_within(points, &format!("class {class}"), range)?))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<flow_viz::RgbImage> = panels
        .chunks(PANELS_PER_ROW)
        .map(|row| flow_viz::side_by_side(&row.iter().collect::<Vec<_>>()))
        .collect();
    Ok(flow_viz::stacked(&rows.iter().collect::<Vec<_>>()))
}

/// One scatter frame per recorded state, titled with `label` and its time.
pub fn animation_frames(path: &[(f64, Array2<f32>)], label: &str) -> Result<Vec<flow_viz::RgbImage>> {
    path.iter().map(|(t, x)| Ok(flow_viz::scatter(x, format!("{label}  t = {t:.2}").trim())?)).collect()
}
