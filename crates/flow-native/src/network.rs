//! The network, its reusable buffers, the forward and backward passes, and Adam.

use rayon::prelude::*;

use crate::activation::{self, Activation};
use crate::kernels::{self, Kernel, Rows, Strided, Supported};
use crate::{NativeError, Result};

/// A multilayer perceptron in PyTorch's `nn.Sequential` layout: each linear map
/// is a row-major `out × in` weight followed by its bias, maps one after the
/// other in one flat vector; the activation follows every map but the last.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    shapes: Vec<(usize, usize)>,
    /// Where each map's weight starts in `parameters` (its bias follows);
    /// fixed with `shapes`, which never change.
    offsets: Vec<usize>,
    activation: Activation,
    parameters: Vec<f32>,
}

impl Mlp {
    /// `shapes` are `(in, out)` per linear map, first to last.
    pub fn new(shapes: Vec<(usize, usize)>, activation: Activation, parameters: Vec<f32>) -> Result<Mlp> {
        if shapes.is_empty() || shapes.iter().any(|&(i, o)| i == 0 || o == 0) {
            return Err(NativeError::Shape(format!("no empty layers allowed, got {shapes:?}")));
        }
        if let Some(pair) = shapes.windows(2).find(|pair| pair[0].1 != pair[1].0) {
            return Err(NativeError::Shape(format!(
                "a layer with {} outputs feeds one with {} inputs",
                pair[0].1, pair[1].0
            )));
        }
        let expected = parameter_count(&shapes);
        if parameters.len() != expected {
            return Err(NativeError::Shape(format!(
                "{} parameters for layers {shapes:?}, which have {expected}",
                parameters.len()
            )));
        }
        let offsets = shapes
            .iter()
            .scan(0, |offset, &(i, o)| {
                let start = *offset;
                *offset += (i + 1) * o;
                Some(start)
            })
            .collect();
        Ok(Mlp { shapes, offsets, activation, parameters })
    }

    pub fn shapes(&self) -> &[(usize, usize)] {
        &self.shapes
    }

    pub fn activation(&self) -> Activation {
        self.activation
    }

    pub fn parameters(&self) -> &[f32] {
        &self.parameters
    }

    pub fn parameters_mut(&mut self) -> &mut [f32] {
        &mut self.parameters
    }

    pub fn inputs(&self) -> usize {
        self.shapes[0].0
    }

    pub fn outputs(&self) -> usize {
        self.shapes[self.shapes.len() - 1].1
    }

    fn widest(&self) -> usize {
        self.shapes.iter().map(|&(i, o)| i.max(o)).max().unwrap_or(0)
    }
}

/// Number of parameters of layers with these `(in, out)` shapes.
pub fn parameter_count(shapes: &[(usize, usize)]) -> usize {
    shapes.iter().map(|&(i, o)| (i + 1) * o).sum()
}

/// Batches are cut into blocks of this many rows, each worked on by one
/// thread; gradients are summed block by block in order, so results do not
/// depend on the number of threads. 256 rows keep a block's activations in L2.
const BLOCK_ROWS: usize = 256;

/// Rows worked on at once: 32 blocks keep the buffers near 20 MB however
/// large the batch or the sample (each block holds its activations).
const WAVE_ROWS: usize = 32 * BLOCK_ROWS;

/// One block's buffers: activations and slopes of every layer, the
/// back-propagated error, and the block's share of the gradient.
#[derive(Default)]
struct Block {
    start: usize,
    rows: usize,
    activations: Vec<Vec<f32>>,
    slopes: Vec<Vec<f32>>,
    error: Vec<f32>,
    error_below: Vec<f32>,
    gradient: Vec<f32>,
    squared_error: f64,
}

/// Reusable buffers and threads for training and evaluating an [`Mlp`].
pub struct Workspace {
    kernel: Supported,
    threads: rayon::ThreadPool,
    blocks: Vec<Block>,
    /// Each weight transposed (in × out), so forward products read rows.
    transposed: Vec<Vec<f32>>,
    gradient: Vec<f32>,
}

impl Workspace {
    /// Buffers for `mlp`-shaped networks, computing on `threads` threads with
    /// `kernel`; one the CPU lacks is an error.
    pub fn with_kernel(threads: usize, kernel: Kernel) -> Result<Workspace> {
        let kernel = Supported::new(kernel)?;
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("flow-native-{i}"))
            .build()
            .map_err(|e| NativeError::Threads(e.to_string()))?;
        Ok(Workspace { kernel, threads, blocks: Vec::new(), transposed: Vec::new(), gradient: Vec::new() })
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel.kernel()
    }

    /// The network's outputs (rows × outputs) for `inputs` (rows × inputs).
    pub fn forward(&mut self, mlp: &Mlp, inputs: &[f32]) -> Result<Vec<f32>> {
        let rows = check_rows(inputs.len(), mlp.inputs(), "inputs")?;
        self.transpose_weights(mlp);
        let outputs = mlp.outputs();
        let mut result = Vec::with_capacity(rows * outputs);
        for start in (0..rows).step_by(WAVE_ROWS) {
            let count = size_blocks(&mut self.blocks, mlp, start, WAVE_ROWS.min(rows - start));
            let (kernel, transposed) = (self.kernel, &self.transposed);
            let blocks = &mut self.blocks[..count];
            self.threads.install(|| {
                blocks
                    .par_iter_mut()
                    .for_each(|block| forward_block(kernel, mlp, transposed, inputs, block, Pass::Inference));
            });
            for block in &self.blocks[..count] {
                result.extend_from_slice(&block.activations[mlp.shapes.len() - 1][..block.rows * outputs]);
            }
        }
        Ok(result)
    }

    /// The outputs (rows × outputs) for `inputs` (rows × inputs) and their
    /// Jacobian-vector products: for each row, `directions` tangent vectors
    /// over the first `width` inputs (`tangents`: rows × directions × width;
    /// the inputs after them, such as time, held fixed) give `directions`
    /// output tangents (rows × directions × outputs). Forward mode: one pass
    /// that keeps the activations' slopes, then one product per layer and
    /// direction. A flow's divergence is the trace of these for the unit
    /// directions; Hutchinson's estimate uses random ones.
    pub fn forward_with_jvps(
        &mut self,
        mlp: &Mlp,
        inputs: &[f32],
        (tangents, directions, width): (&[f32], usize, usize),
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let rows = check_rows(inputs.len(), mlp.inputs(), "inputs")?;
        if width == 0 || width > mlp.inputs() || tangents.len() != rows * directions * width {
            return Err(NativeError::Shape(format!(
                "{} tangent values for {rows} rows of {directions} directions over {width} of {} inputs",
                tangents.len(),
                mlp.inputs()
            )));
        }
        self.transpose_weights(mlp);
        let outputs = mlp.outputs();
        let mut values = Vec::with_capacity(rows * outputs);
        let mut products = vec![0.0; rows * directions * outputs];
        for start in (0..rows).step_by(WAVE_ROWS) {
            let count = size_blocks(&mut self.blocks, mlp, start, WAVE_ROWS.min(rows - start));
            let (kernel, transposed) = (self.kernel, &self.transposed);
            let blocks = &mut self.blocks[..count];
            let wave = &mut products[start * directions * outputs..];
            let mut chunks: Vec<&mut [f32]> = Vec::with_capacity(count);
            let mut rest = wave;
            for block in blocks.iter() {
                let (chunk, tail) = rest.split_at_mut(block.rows * directions * outputs);
                chunks.push(chunk);
                rest = tail;
            }
            self.threads.install(|| {
                blocks.par_iter_mut().zip(chunks).for_each(|(block, out)| {
                    forward_block(kernel, mlp, transposed, inputs, block, Pass::Training);
                    jvp_block(kernel, mlp, transposed, (tangents, directions, width), block, out);
                });
            });
            for block in &self.blocks[..count] {
                values.extend_from_slice(&block.activations[mlp.shapes.len() - 1][..block.rows * outputs]);
            }
        }
        Ok((values, products))
    }

    /// Mean squared error of `mlp` on `inputs` (rows × inputs) against
    /// `targets` (rows × outputs), averaged over every element as PyTorch's
    /// `mse_loss` does, and its gradient in the flat parameter layout.
    pub fn loss_and_gradient(&mut self, mlp: &Mlp, inputs: &[f32], targets: &[f32]) -> Result<(f32, &[f32])> {
        let ((loss, _), ()) = self.loss_and_gradient_while(mlp, inputs, targets, || ())?;
        Ok((loss, &self.gradient))
    }

    /// As [`Workspace::loss_and_gradient`], running `meanwhile` on the calling
    /// thread while the pool computes (a trainer draws its next batch there:
    /// otherwise the pool would wait for it, a quarter of a step on 2 cores).
    pub fn loss_and_gradient_while<T>(
        &mut self,
        mlp: &Mlp,
        inputs: &[f32],
        targets: &[f32],
        meanwhile: impl FnOnce() -> T,
    ) -> Result<((f32, &[f32]), T)> {
        self.weighted_loss_and_gradient_while(mlp, (inputs, targets, None), meanwhile)
    }

    /// As [`Workspace::loss_and_gradient_while`], each row's squared error times its weight
    /// in `weights` (one per row; `None`: all 1, the same bits as the plain loss).
    pub fn weighted_loss_and_gradient_while<T>(
        &mut self,
        mlp: &Mlp,
        (inputs, targets, weights): (&[f32], &[f32], Option<&[f32]>),
        meanwhile: impl FnOnce() -> T,
    ) -> Result<((f32, &[f32]), T)> {
        let rows = check_rows(inputs.len(), mlp.inputs(), "inputs")?;
        let target_rows = check_rows(targets.len(), mlp.outputs(), "targets")?;
        if rows != target_rows || rows == 0 {
            return Err(NativeError::Shape(format!("{rows} input rows against {target_rows} target rows")));
        }
        if let Some(weights) = weights
            && weights.len() != rows
        {
            return Err(NativeError::Shape(format!("{} weights for {rows} rows", weights.len())));
        }
        self.transpose_weights(mlp);
        let Workspace { kernel, threads, blocks, transposed, gradient } = self;
        let (kernel, transposed) = (*kernel, &*transposed);
        gradient.clear();
        gradient.resize(mlp.parameters.len(), 0.0);
        let scale = 2.0 / (rows * mlp.outputs()) as f32;
        let mut squared_error = 0.0;
        let mut side = None;
        threads.in_place_scope(|scope| {
            scope.spawn(|_| {
                for start in (0..rows).step_by(WAVE_ROWS) {
                    let count = size_blocks(blocks, mlp, start, WAVE_ROWS.min(rows - start));
                    blocks[..count].par_iter_mut().for_each(|block| {
                        forward_block(kernel, mlp, transposed, inputs, block, Pass::Training);
                        backward_block(kernel, mlp, (inputs, targets, weights), scale, block);
                    });
                    // Block by block in row order, whatever the wave and thread layout.
                    for block in &blocks[..count] {
                        squared_error += block.squared_error;
                        for (total, &part) in gradient.iter_mut().zip(&block.gradient) {
                            *total += part;
                        }
                    }
                }
            });
            side = Some(meanwhile());
        });
        let loss = (squared_error / (rows * mlp.outputs()) as f64) as f32;
        let side = side.expect("in_place_scope runs its body");
        Ok(((loss, &self.gradient), side))
    }

    /// Each weight transposed (in × out), for the forward products.
    fn transpose_weights(&mut self, mlp: &Mlp) {
        self.transposed.resize_with(mlp.shapes.len(), Vec::new);
        for ((&(inputs, outputs), offset), transposed) in
            mlp.shapes.iter().zip(mlp.offsets.iter().copied()).zip(&mut self.transposed)
        {
            let weight = &mlp.parameters[offset..offset + inputs * outputs];
            transposed.resize(inputs * outputs, 0.0);
            for o in 0..outputs {
                for i in 0..inputs {
                    transposed[i * outputs + o] = weight[o * inputs + i];
                }
            }
        }
    }
}

/// Blocks for the `rows` rows from `start` (at most one wave).
/// Returns how many of `blocks` are in use; the rest keep their buffers
/// for the next full wave (freeing them made every call re-zero megabytes).
fn size_blocks(blocks: &mut Vec<Block>, mlp: &Mlp, start: usize, rows: usize) -> usize {
    let count = rows.div_ceil(BLOCK_ROWS);
    if blocks.len() < count {
        blocks.resize_with(count, Block::default);
    }
    for (i, block) in blocks[..count].iter_mut().enumerate() {
        block.start = start + i * BLOCK_ROWS;
        block.rows = BLOCK_ROWS.min(rows - i * BLOCK_ROWS);
        resize_block(block, mlp);
    }
    count
}

fn check_rows(len: usize, width: usize, what: &str) -> Result<usize> {
    if !len.is_multiple_of(width) {
        return Err(NativeError::Shape(format!("{len} {what} values do not make rows of {width}")));
    }
    Ok(len / width)
}

fn resize_block(block: &mut Block, mlp: &Mlp) {
    let layers = mlp.shapes.len();
    block.activations.resize_with(layers, Vec::new);
    block.slopes.resize_with(layers - 1, Vec::new);
    for (l, &(_, outputs)) in mlp.shapes.iter().enumerate() {
        block.activations[l].resize(BLOCK_ROWS * outputs, 0.0);
        if l + 1 < layers {
            block.slopes[l].resize(BLOCK_ROWS * outputs, 0.0);
        }
    }
    block.error.resize(BLOCK_ROWS * mlp.widest(), 0.0);
    block.error_below.resize(BLOCK_ROWS * mlp.widest(), 0.0);
    block.gradient.resize(mlp.parameters.len(), 0.0);
}

/// Whether a forward pass keeps the activations' slopes for a backward pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Training,
    Inference,
}

fn forward_block(
    kernel: Supported,
    mlp: &Mlp,
    transposed: &[Vec<f32>],
    inputs: &[f32],
    block: &mut Block,
    pass: Pass,
) {
    let rows = block.rows;
    let width = mlp.inputs();
    let input = &inputs[block.start * width..(block.start + rows) * width];
    let last = mlp.shapes.len() - 1;
    for (l, (&(ins, outs), offset)) in mlp.shapes.iter().zip(mlp.offsets.iter().copied()).enumerate() {
        let bias = &mlp.parameters[offset + ins * outs..offset + (ins + 1) * outs];
        let (below, here) = block.activations.split_at_mut(l);
        let a = if l == 0 { input } else { &below[l - 1][..rows * ins] };
        let out = &mut here[0][..rows * outs];
        kernels::matmul(
            kernel,
            (rows, outs, ins),
            Strided { data: a, row: ins, col: 1 },
            Rows { data: &transposed[l], stride: outs },
            Rows { data: out, stride: outs },
            Some(bias),
        );
        if l < last {
            let slopes = (pass == Pass::Training).then(|| &mut block.slopes[l][..rows * outs]);
            activation::activate(kernel, mlp.activation, out, slopes);
        }
    }
}

/// Pushes each tangent direction of the block's rows through the layers,
/// using the slopes a training forward pass kept; writes rows × directions × outputs.
fn jvp_block(
    kernel: Supported,
    mlp: &Mlp,
    transposed: &[Vec<f32>],
    (tangents, directions, width): (&[f32], usize, usize),
    block: &mut Block,
    out: &mut [f32],
) {
    let rows = block.rows;
    let last = mlp.shapes.len() - 1;
    let outputs = mlp.outputs();
    let Block { slopes, error: here, error_below: below, .. } = block;
    for direction in 0..directions {
        // Row r's tangent starts at (r·directions + direction)·width.
        let first = (block.start * directions + direction) * width;
        for (l, &(ins, outs)) in mlp.shapes.iter().enumerate() {
            // The first layer sees only the tangent's `width` inputs (time is held fixed).
            let (a, depth, weights) = if l == 0 {
                let a = Strided { data: &tangents[first..], row: directions * width, col: 1 };
                (a, width, &transposed[0][..width * outs])
            } else {
                (Strided { data: &below[..rows * ins], row: ins, col: 1 }, ins, &transposed[l][..])
            };
            let result = &mut here[..rows * outs];
            let weights = Rows { data: weights, stride: outs };
            kernels::matmul(
                kernel,
                (rows, outs, depth),
                a,
                weights,
                Rows { data: result, stride: outs },
                None,
            );
            if l < last {
                for (t, &slope) in result.iter_mut().zip(&slopes[l][..rows * outs]) {
                    *t *= slope;
                }
            }
            std::mem::swap(here, below);
        }
        // After the swap the last layer's tangents are in `below`.
        for r in 0..rows {
            let row = &below[r * outputs..(r + 1) * outputs];
            out[(r * directions + direction) * outputs..][..outputs].copy_from_slice(row);
        }
    }
}

fn backward_block(
    kernel: Supported,
    mlp: &Mlp,
    (inputs, targets, weights): (&[f32], &[f32], Option<&[f32]>),
    scale: f32,
    block: &mut Block,
) {
    let rows = block.rows;
    let outputs = mlp.outputs();
    let last = mlp.shapes.len() - 1;
    let target = &targets[block.start * outputs..(block.start + rows) * outputs];
    let prediction = &block.activations[last][..rows * outputs];
    let mut squared_error = 0.0f64;
    match weights {
        None => {
            for ((e, &p), &t) in block.error.iter_mut().zip(prediction).zip(target) {
                let difference = p - t;
                squared_error += f64::from(difference * difference);
                *e = difference * scale;
            }
        }
        Some(weights) => {
            let errors = block.error[..rows * outputs].chunks_mut(outputs);
            let rows_of = errors.zip(prediction.chunks(outputs)).zip(target.chunks(outputs));
            for (r, ((row, predicted), wanted)) in rows_of.enumerate() {
                let weight = weights[block.start + r];
                for ((e, &p), &t) in row.iter_mut().zip(predicted).zip(wanted) {
                    let difference = p - t;
                    squared_error += f64::from(weight * difference * difference);
                    *e = difference * scale * weight;
                }
            }
        }
    }
    block.squared_error = squared_error;

    let width = mlp.inputs();
    let input = &inputs[block.start * width..(block.start + rows) * width];
    for (l, (&(ins, outs), offset)) in mlp.shapes.iter().zip(mlp.offsets.iter().copied()).enumerate().rev() {
        let a = if l == 0 { input } else { &block.activations[l - 1][..rows * ins] };
        let error = &block.error[..rows * outs];
        let (weight_gradient, bias_gradient) =
            block.gradient[offset..offset + (ins + 1) * outs].split_at_mut(ins * outs);
        // ∂W = errorᵀ · a: the error read transposed through its strides.
        kernels::matmul(
            kernel,
            (outs, ins, rows),
            Strided { data: error, row: 1, col: outs },
            Rows { data: a, stride: ins },
            Rows { data: weight_gradient, stride: ins },
            None,
        );
        kernels::column_sums(error, outs, bias_gradient);
        if l == 0 {
            break;
        }
        let weight = &mlp.parameters[offset..offset + ins * outs];
        let below = &mut block.error_below[..rows * ins];
        kernels::matmul(
            kernel,
            (rows, ins, outs),
            Strided { data: error, row: outs, col: 1 },
            Rows { data: weight, stride: ins },
            Rows { data: &mut *below, stride: ins },
            None,
        );
        for (e, &slope) in below.iter_mut().zip(&block.slopes[l - 1][..rows * ins]) {
            *e *= slope;
        }
        std::mem::swap(&mut block.error, &mut block.error_below);
    }
}

/// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8), the same
/// arithmetic as `torch.optim.Adam`; with a weight decay, `torch.optim.AdamW`'s
/// decoupled one (each weight shrunk by 1 − lr·λ before the Adam step).
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    /// AdamW's decoupled weight decay λ (0: plain Adam, untouched arithmetic).
    pub weight_decay: f64,
    /// Updates taken so far (bias correction uses it; resuming restores it).
    pub step: u64,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f32 = 1e-8;

    pub fn new(parameters: usize, lr: f64) -> Adam {
        Adam {
            lr,
            weight_decay: 0.0,
            step: 0,
            first_moment: vec![0.0; parameters],
            second_moment: vec![0.0; parameters],
        }
    }

    /// The same optimiser with AdamW's decoupled weight decay λ.
    pub fn with_weight_decay(self, weight_decay: f64) -> Adam {
        Adam { weight_decay, ..self }
    }

    pub fn update(&mut self, parameters: &mut [f32], gradient: &[f32]) {
        self.step += 1;
        let step = self.step as i32;
        let bias1 = 1.0 - Adam::BETA1.powi(step);
        let root_bias2 = (1.0 - Adam::BETA2.powi(step)).sqrt() as f32;
        let rate = (self.lr / bias1) as f32;
        // 1 − β in f64, then rounded, as PyTorch passes it (1 − 0.999f32 would be 1.3e-5 off).
        let (new1, keep2, new2) =
            ((1.0 - Adam::BETA1) as f32, Adam::BETA2 as f32, (1.0 - Adam::BETA2) as f32);
        if self.weight_decay > 0.0 {
            // torch's param.mul_(1 − lr·λ), the factor from f64 as Python passes it.
            let shrink = (1.0 - self.lr * self.weight_decay) as f32;
            parameters.iter_mut().for_each(|p| *p *= shrink);
        }
        for (((p, &g), m), v) in
            parameters.iter_mut().zip(gradient).zip(&mut self.first_moment).zip(&mut self.second_moment)
        {
            // torch's lerp_(g, 1 − β₁) and mul_(β₂).addcmul_(g, g, 1 − β₂).
            *m += new1 * (g - *m);
            *v = *v * keep2 + new2 * g * g;
            *p -= *m / (v.sqrt() / root_bias2 + Adam::EPS) * rate;
        }
    }

    pub fn moments(&self) -> (&[f32], &[f32]) {
        (&self.first_moment, &self.second_moment)
    }

    /// Restores what [`Adam::moments`] and `step` gave.
    pub fn restore(&mut self, first: Vec<f32>, second: Vec<f32>, step: u64) -> Result<()> {
        if first.len() != self.first_moment.len() || second.len() != self.second_moment.len() {
            return Err(NativeError::Shape(format!(
                "optimiser moments of {} and {} values for {} parameters",
                first.len(),
                second.len(),
                self.first_moment.len()
            )));
        }
        (self.first_moment, self.second_moment, self.step) = (first, second, step);
        Ok(())
    }
}
