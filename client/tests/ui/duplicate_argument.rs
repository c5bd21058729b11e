#[zibrato::count_me(level = "info", name = "a", name = "b")]
fn f() {}

fn main() {
    f();
}
