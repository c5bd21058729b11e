#[zibrato::count_me(level = "info", labels(status = 200))]
fn f() {}

fn main() {
    f();
}
