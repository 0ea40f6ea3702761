//! The `pandodb` command: `inspect`, `verify` and `dump` of pandodb
//! snapshots, log segments and database directories (see
//! `pandodb --help` and [`pandodb::cli`]). Objects are shown as byte
//! counts; an application registers its row types in a
//! [`pandodb::cli::Registry`] and builds its own binary to see them as JSON.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let registry = pandodb::cli::Registry::new();
    let code = pandodb::cli::run(
        &args,
        &registry,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}
