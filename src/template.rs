//! Card templates: the registry's `templates/` as a minijinja environment, and where rendered
//! cards go. Both card formats use it: Papers-with-Code collection cards ([`crate::docs`]) and
//! Hub model cards ([`crate::hub`]).
use crate::registry::{Registry, RegistryError};

/// Where the cards go, relative to the registry directory.
pub const CARDS_DIR: &str = "cards";

/// Where the templates are, relative to the registry directory.
pub const TEMPLATES_DIR: &str = "templates";

/// A template that cannot be read, parsed or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A template file of the registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A template does not parse or render.
    #[error("template `{template}`: {message}")]
    Render {
        /// The template name.
        template: String,
        /// minijinja's message (with its line), and its causes.
        message: String,
    },
}

/// The card file name of a collection: lower case, runs of other characters as `-`.
pub fn slug(collection: &str) -> String {
    let mut out = String::new();
    for c in collection.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// minijinja's error for `template`, with its causes in the message.
pub fn render_error(template: &str, e: &minijinja::Error) -> TemplateError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    TemplateError::Render {
        template: template.to_string(),
        message,
    }
}

/// A template environment over the registry's `templates/` (embedded or on disk).
pub fn environment(registry: &Registry) -> Result<minijinja::Environment<'static>, TemplateError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let prefix = format!("{TEMPLATES_DIR}/");
    for rel in registry.files_under(&prefix) {
        let name = rel[prefix.len()..].to_string();
        let source = registry.read_file(&rel)?;
        env.add_template_owned(name.clone(), source)
            .map_err(|e| render_error(&name, &e))?;
    }
    Ok(env)
}
