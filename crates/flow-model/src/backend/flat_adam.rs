//! Adam over one flat libtorch parameter tensor.

use tch::Tensor;

/// Adam (Kingma & Ba, with PyTorch's defaults β = (0.9, 0.999), ε = 1e-8) over
/// one flat parameter tensor: a whole update is six tensor operations, however
/// many layers the network has. A weight decay makes it `torch.optim.AdamW`
/// (decoupled: each weight shrunk by 1 − lr·λ before the Adam step).
pub struct FlatAdam {
    pub lr: f64,
    /// AdamW's decoupled weight decay λ (0: plain Adam).
    pub weight_decay: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Updates taken so far (bias correction uses it; resuming restores it).
    pub step: u64,
    first_moment: Tensor,
    second_moment: Tensor,
}

impl FlatAdam {
    pub fn new(parameters: &Tensor, lr: f64) -> FlatAdam {
        FlatAdam {
            lr,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            first_moment: parameters.zeros_like().detach(),
            second_moment: parameters.zeros_like().detach(),
        }
    }

    /// The same optimiser with AdamW's decoupled weight decay λ.
    pub fn with_weight_decay(self, weight_decay: f64) -> FlatAdam {
        FlatAdam { weight_decay, ..self }
    }

    /// One update of `parameters` from its accumulated gradient, which is then cleared.
    pub fn step(&mut self, parameters: &mut Tensor) {
        self.step += 1;
        let step = self.step as i32;
        let bias1 = 1.0 - self.beta1.powi(step);
        let bias2 = 1.0 - self.beta2.powi(step);
        tch::no_grad(|| {
            let mut gradient = parameters.grad();
            if self.weight_decay > 0.0 {
                let _ = parameters.g_mul_scalar_(1.0 - self.lr * self.weight_decay);
            }
            // m ← β₁m + (1 − β₁)g as one lerp; v ← β₂v + (1 − β₂)g².
            let _ = self.first_moment.lerp_(&gradient, 1.0 - self.beta1);
            let _ = self.second_moment.g_mul_scalar_(self.beta2);
            let _ = self.second_moment.g_add_(&(gradient.square() * (1.0 - self.beta2)));
            let denominator = self.second_moment.sqrt() / bias2.sqrt() + self.eps;
            let _ = parameters.g_sub_(&(&self.first_moment / denominator * (self.lr / bias1)));
            let _ = gradient.zero_();
        });
    }

    /// The moments, for a resumable checkpoint.
    pub fn moments(&self) -> (&Tensor, &Tensor) {
        (&self.first_moment, &self.second_moment)
    }

    /// Restores moments and step count saved by [`FlatAdam::moments`].
    pub fn restore(&mut self, first: &Tensor, second: &Tensor, step: u64) {
        tch::no_grad(|| {
            self.first_moment.copy_(first);
            self.second_moment.copy_(second);
        });
        self.step = step;
    }
}
