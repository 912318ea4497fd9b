//! `zoo schema [--write [DIR] | --check [DIR]]`.
use std::path::Path;

use super::Status;

pub(super) fn run(write: Option<&Path>, check: Option<&Path>) -> anyhow::Result<Status> {
    let files = crate::schema::schema_files();
    if let Some(dir) = write {
        std::fs::create_dir_all(dir)?;
        for (name, text) in &files {
            crate::fsutil::write_atomic(&dir.join(name), text)?;
            eprintln!("wrote {}", dir.join(name).display());
        }
        return Ok(Status::Ok);
    }
    if let Some(dir) = check {
        let mut stale = false;
        for (name, text) in &files {
            let path = dir.join(name);
            let problem = match std::fs::read_to_string(&path) {
                Ok(current) if current == *text => continue,
                Ok(_) => "is stale".to_string(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "is missing".to_string(),
                Err(e) => format!("cannot be read ({e})"),
            };
            outln!(
                "{} {problem}; run `zoo schema --write {}`",
                path.display(),
                dir.display()
            );
            stale = true;
        }
        return Ok(if stale { Status::Failed } else { Status::Ok });
    }
    out!("{}", files[0].1);
    Ok(Status::Ok)
}
