//! Closure forms: measure a call and get its result back unchanged.

fn main() -> Result<(), zibrato::Error> {
    let z = zibrato::Zibrato::from_env()?;
    let rows = z.timed("debug", "load.rows", || vec![1, 2, 3]);
    let total: i32 = z.counted("info", "sums", 1, || rows.iter().sum());
    let parsed: Result<u16, _> = z.source("cli").timed("debug", "parse", || "5550".parse());
    println!("{rows:?} {total} {parsed:?}");
    Ok(())
}
