use crate::TpfMessage;
use crate::testing::*;
extern crate std;
use std::println;

#[test]
fn smoke() {
    let t = Tick::sample(1);
    let b = t.encode_to_vec().unwrap();
    println!(
        "{}",
        b.iter()
            .map(|x| std::format!("{x:02x}"))
            .collect::<std::string::String>()
    );
    assert_eq!(Tick::decode(&b).unwrap(), t);
    let v = Tick::view(&b).unwrap();
    println!("{v:?}");
    let batch = Batch::sample();
    let b = batch.encode_to_vec().unwrap();
    println!("batch {}", b.len());
    assert_eq!(Batch::decode(&b).unwrap(), batch);
    let v = Batch::view(&b).unwrap();
    assert_eq!(v.to_owned_message(), batch);
    println!("{:?}", Batch::schema());
}
