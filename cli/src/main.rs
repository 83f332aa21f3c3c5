//! The `tamtam` command.

fn main() {}
