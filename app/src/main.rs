fn main() {
    println!("hstu-explorer: not built yet");
}
