//! The hint under an error, worded in the flags of the command that printed it.
//!
//! Library errors state facts (which architecture a checkpoint's shapes fit, which checkpoints a
//! directory holds, that an output name is unsafe); only the command knows which of its flags
//! takes the fix (`convert --arch`, `eval NAME`, `fingerprint FILE`), so the hint is written
//! here, from the error's fields, never from another command's flags.
use crate::checkpoint::CheckpointError;
use crate::convert::output::OutputError;
use crate::convert::pipeline::ConvertError;
use crate::eval::model::ModelEvalError;
use crate::eval::run::RunError;
use crate::export::ExportError;
use crate::mapping::fit::Diagnosis;

/// A command's flags that a hint may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags {
    /// The subcommand (`convert`, `eval`, …).
    pub command: &'static str,
    /// `--arch SPEC`.
    pub arch: bool,
    /// `--weights ema|raw`: which TF weight set.
    pub weight_set: bool,
    /// How the command takes a checkpoint path: `--from PATH`, `--weights FILE`, or a
    /// positional `FILE`; `None` when it takes none.
    pub path: Option<&'static str>,
    /// `--name-as STEM`.
    pub name_as: bool,
    /// `--skip-bad`.
    pub skip_bad: bool,
}

impl Flags {
    /// A command with none of the flags a hint names.
    pub(crate) const fn none(command: &'static str) -> Flags {
        Flags {
            command,
            arch: false,
            weight_set: false,
            path: None,
            name_as: false,
            skip_bad: false,
        }
    }
}

/// The facts of `err` that a hint is about.
enum Fact<'e> {
    Diagnosis(&'e Diagnosis),
    Several(&'e [std::path::PathBuf]),
    NeedsArch,
    UnsafeName,
    BadImage,
}

fn checkpoint_fact(e: &CheckpointError) -> Option<Fact<'_>> {
    match e {
        CheckpointError::Mismatch { diagnosis, .. } => diagnosis.as_deref().map(Fact::Diagnosis),
        CheckpointError::Mapping { error, .. } => error.diagnosis.as_deref().map(Fact::Diagnosis),
        CheckpointError::SeveralCheckpoints { indexes, .. } => Some(Fact::Several(indexes)),
        CheckpointError::NeedsArch { .. } => Some(Fact::NeedsArch),
        _ => None,
    }
}

fn convert_fact(e: &ConvertError) -> Option<Fact<'_>> {
    match e {
        ConvertError::Source(c) => checkpoint_fact(c),
        ConvertError::Output(OutputError::UnsafeName { .. }) => Some(Fact::UnsafeName),
        _ => None,
    }
}

fn fact<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<Fact<'a>> {
    if let Some(e) = cause.downcast_ref::<CheckpointError>() {
        return checkpoint_fact(e);
    }
    if let Some(e) = cause.downcast_ref::<ConvertError>() {
        return convert_fact(e);
    }
    if let Some(ExportError::Convert(e)) = cause.downcast_ref::<ExportError>() {
        return convert_fact(e);
    }
    match cause.downcast_ref::<ModelEvalError>() {
        Some(ModelEvalError::Checkpoint(e)) => return checkpoint_fact(e),
        Some(ModelEvalError::Run(RunError::Image(_))) => return Some(Fact::BadImage),
        _ => {}
    }
    if let Some(RunError::Image(_)) = cause.downcast_ref::<RunError>() {
        return Some(Fact::BadImage);
    }
    if let Some(OutputError::UnsafeName { .. }) = cause.downcast_ref::<OutputError>() {
        return Some(Fact::UnsafeName);
    }
    None
}

/// The hint for `err` in `flags`' own words, or `None` when there is nothing the command's
/// flags can do about it.
pub(crate) fn hint(flags: Flags, err: &anyhow::Error) -> Option<String> {
    let fact = err.chain().find_map(fact)?;
    let Flags { command, .. } = flags;
    match fact {
        Fact::Diagnosis(d) => match &d.fits {
            Some(a) if *a == d.requested => flags
                .weight_set
                .then(|| "hint: try the other weight set (--weights ema or --weights raw)".into()),
            Some(a) if flags.arch => Some(format!("hint: the checkpoint fits --arch {a}")),
            Some(a) => Some(format!(
                "hint: the weights are `{a}`, not the model's architecture: give the weights of \
                 the model named, or name the model they belong to{}",
                // A timm name: the registry's models of it are named after it.
                if a.contains([':', '=']) {
                    String::new()
                } else {
                    format!(" (`zoo list '{a}*'` lists the registry models named after it)")
                }
            )),
            None => None,
        },
        Fact::Several(indexes) => {
            let prefix = indexes.first().map(|p| p.with_extension(""))?;
            let prefix = prefix.display();
            match flags.path {
                Some(flag) if flag.starts_with("--") => {
                    Some(format!("hint: give one as {flag} {prefix}"))
                }
                Some(positional) => Some(format!(
                    "hint: give `zoo {command}` one by its prefix as {positional}, e.g. {prefix}"
                )),
                None => None,
            }
        }
        Fact::NeedsArch => flags.arch.then(|| {
            "hint: give the architecture with --arch (a timm name or a registry model)".into()
        }),
        Fact::UnsafeName => flags
            .name_as
            .then(|| "hint: pass --name-as with a plain file name".into()),
        Fact::BadImage => flags
            .skip_bad
            .then(|| "hint: --skip-bad counts and lists such images instead".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::fit::Outline;
    use std::path::PathBuf;

    fn flags_of(args: &[&str]) -> Flags {
        use clap::Parser;
        super::super::Cli::try_parse_from(args)
            .unwrap()
            .command
            .flags()
    }

    fn mismatch(fits: &str, requested: &str) -> anyhow::Error {
        anyhow::Error::new(CheckpointError::Mismatch {
            path: PathBuf::from("w.safetensors"),
            arch: requested.into(),
            problems: vec![],
            diagnosis: Some(Box::new(Diagnosis {
                checkpoint: Outline::default(),
                architecture: Outline::default(),
                requested: requested.into(),
                fits: Some(fits.into()),
                untried: 0,
            })),
        })
    }

    /// Every hint names only flags its own command has: `--arch` for convert, fingerprint and
    /// diff, never for eval or export; `--from` for convert and export, `--weights FILE` for
    /// eval, the positional FILE for fingerprint.
    #[test]
    fn hints_name_only_the_flags_of_the_command_that_failed() {
        let convert = flags_of(&["zoo", "convert", "--from", "x", "--arch", "b0"]);
        let eval = flags_of(&["zoo", "eval", "b0_ns", "--weights", "x", "--dataset", "d"]);
        let export = flags_of(&["zoo", "export", "b0_ns", "--hf", "d"]);
        let fingerprint = flags_of(&["zoo", "fingerprint", "x"]);
        let wrong = mismatch("tf_efficientnet_b1", "tf_efficientnet_b0");
        assert_eq!(
            hint(convert, &wrong).unwrap(),
            "hint: the checkpoint fits --arch tf_efficientnet_b1"
        );
        assert_eq!(
            hint(fingerprint, &wrong).unwrap(),
            "hint: the checkpoint fits --arch tf_efficientnet_b1"
        );
        for flags in [eval, export] {
            let h = hint(flags, &wrong).unwrap();
            assert!(!h.contains("--arch"), "{h}");
            assert!(h.contains("`zoo list 'tf_efficientnet_b1*'`"), "{h}");
        }
        // The architecture is right: the other weight set, where the command has one.
        let same = mismatch("tf_efficientnet_b0", "tf_efficientnet_b0");
        assert!(hint(convert, &same).unwrap().contains("--weights raw"));
        assert_eq!(
            hint(eval, &same),
            None,
            "eval's --weights is a file, not a set"
        );

        let several = || {
            anyhow::Error::new(CheckpointError::SeveralCheckpoints {
                dir: PathBuf::from("d"),
                indexes: vec![PathBuf::from("d/a.index"), PathBuf::from("d/b.index")],
            })
        };
        assert_eq!(
            hint(convert, &several()).unwrap(),
            "hint: give one as --from d/a"
        );
        assert_eq!(
            hint(eval, &several()).unwrap(),
            "hint: give one as --weights d/a"
        );
        let h = hint(fingerprint, &several()).unwrap();
        assert!(!h.contains("--"), "{h}");
        assert!(
            h.contains("`zoo fingerprint` one by its prefix as FILE, e.g. d/a"),
            "{h}"
        );
        // The library's own message names no flag.
        let text = several().to_string();
        assert!(!text.contains("--"), "{text}");
    }
}
