//! Benchmark: run_overhead (prints its figures).

fn main() {
    println!("run_overhead: not yet available");
}
