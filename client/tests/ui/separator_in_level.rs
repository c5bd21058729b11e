#[zibrato::count_me(level = "in|fo")]
fn f() {}

fn main() {
    f();
}
