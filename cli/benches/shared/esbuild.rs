//! esbuild (guest-sdk-js's copy) turning an example's TypeScript into the JavaScript workerd
//! runs. Shared by the bench binaries.

use std::path::Path;
use std::process::Command;

/// Builds `entry` into `outfile` as an ES module (es2022, platform neutral), with more esbuild
/// `options` (JavaScript object members, e.g. `bundle:true,`; may be empty); `repo` is the
/// repository's root.
pub(crate) fn esbuild(
    repo: &Path,
    entry: &Path,
    outfile: &Path,
    options: &str,
) -> anyhow::Result<()> {
    let esbuild = repo.join("guest-sdk-js/node_modules/esbuild");
    let script = format!(
        "require({:?}).buildSync({{{options}entryPoints:[{:?}],outfile:{:?},format:'esm',platform:'neutral',target:'es2022'}})",
        esbuild.display().to_string(),
        entry.display().to_string(),
        outfile.display().to_string(),
    );
    let status = Command::new("node").args(["-e", &script]).status()?;
    anyhow::ensure!(status.success(), "esbuild {}", entry.display());
    Ok(())
}
