//! The `mirrorbox` binary: everything it does is in the library's [`mirrorbox::cli`].

fn main() {
    std::process::exit(mirrorbox::cli::main());
}
