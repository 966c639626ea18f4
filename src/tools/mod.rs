//! The tools: modes the portal may run for a client (`cli::is_tool`), one file per tool named
//! as its subcommand.

pub mod args;
