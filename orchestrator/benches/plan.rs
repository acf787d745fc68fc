//! Benchmark: plan (prints its figures).

fn main() {
    println!("plan: not yet available");
}
