//! Generates `include/liminal.h` with cbindgen. The header is committed; it
//! is rewritten only when its content changes, so CI can check freshness with
//! `git diff --exit-code include/`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=Cargo.toml");
    // A soname, so installed copies can be versioned by major version.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libliminal.so.{major}");
    }
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let version =
        |part: &str| std::env::var(format!("CARGO_PKG_VERSION_{part}")).expect("set by cargo");
    let mut config = config;
    let macros = format!(
        "\n/* Version of this header; compare with liminal_version() at run time. */\n\
         #define LIMINAL_VERSION_MAJOR {}\n#define LIMINAL_VERSION_MINOR {}\n#define LIMINAL_VERSION_PATCH {}\n",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH")
    );
    config.after_includes = Some(format!(
        "{}\n{}",
        config.after_includes.take().unwrap_or_default(),
        macros
    ));
    let bindings = match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => bindings,
        Err(error) => {
            println!("cargo:warning=cbindgen failed: {error}");
            std::process::exit(1);
        }
    };
    let path = crate_dir.join("include").join("liminal.h");
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("include/ is writable");
    // `write_to_file` leaves the file untouched when the content is the same.
    bindings.write_to_file(&path);
}
