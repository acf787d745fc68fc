//! Benchmark: validate (prints its figures).

fn main() {
    println!("validate: not yet available");
}
