#[zibrato::time_me(level = "info", labels(route = ""))]
fn f() {}

fn main() {
    f();
}
