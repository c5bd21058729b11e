#[zibrato::count_me(level = "info", labels(a = "1", b = "2", a = "3"))]
fn f() {}

fn main() {
    f();
}
