#[zibrato::count_me(level = "info", labels(level = "debug"))]
fn f() {}

fn main() {
    f();
}
