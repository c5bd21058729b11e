#[zibrato::time_me(level = "debug")]
struct S;

fn main() {
    let _ = S;
}
