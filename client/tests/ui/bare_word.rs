#[zibrato::count_me(info)]
fn f() {}

fn main() {
    f();
}
