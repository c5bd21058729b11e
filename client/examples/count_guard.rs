//! Counting when a scope ends (Zibrato 0.2's `with z.Count_me(...)`).

fn main() -> Result<(), zibrato::Error> {
    let z = zibrato::Zibrato::from_env()?;
    for job in 0..3 {
        let _c = z.count_on_drop("info", "jobs.done", 1);
        println!("job {job}");
    } // counted as each iteration ends, also on early return or panic
    Ok(())
}
