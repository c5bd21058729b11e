#[zibrato::count_me(level = "info", labels(route = "a;b"))]
fn f() {}

fn main() {
    f();
}
