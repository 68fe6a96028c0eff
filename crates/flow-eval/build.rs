//! Links libtorch with an RPATH and `--no-as-needed` (tch-rs #787), through torch-link.

fn main() {
    torch_link::emit();
}
