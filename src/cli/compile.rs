//! `recspec compile`: print a spec's graph as text, JSON, Graphviz, a model card, a PyTorch
//! module, or through a user template.

use super::{compile, Exit, FeatureFile, Hparams};
use clap::ValueEnum;
use recspec::app::{pictures, AppError};
use recspec::render::{self, Emit};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The spec to compile.
    file: PathBuf,
    #[command(flatten)]
    hparams: Hparams,
    #[command(flatten)]
    features: FeatureFile,
    /// What to print: the canonical text graph, JSON, Graphviz, the Markdown model card
    /// (summary), a PyTorch module, or the architecture as a picture (svg, html).
    #[arg(long, value_enum, default_value = "graph")]
    emit: EmitArg,
    /// Render with this minijinja template instead (it receives `g`, the graph view).
    #[arg(long)]
    template: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum EmitArg {
    Graph,
    Json,
    Dot,
    Summary,
    /// A self-contained PyTorch module (imports the `recspec_torch` package in python/).
    Pytorch,
    /// The architecture drawn as one SVG file (no external tools).
    Svg,
    /// One self-contained HTML page: the architecture picture, its legend and the model card.
    Html,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let (_, checked) = compile(&args.file, None, args.features.features.as_deref(), &args.hparams.overrides()?)?;
    let Some(graph) = checked.graph else {
        if !checked.has_errors() {
            eprintln!("error: {} has no model to compile", args.file.display());
            return Ok(Exit::Error);
        }
        return Ok(Exit::Findings);
    };
    let emit = match args.emit {
        EmitArg::Graph => Emit::Graph,
        EmitArg::Json => Emit::Json,
        EmitArg::Dot => Emit::Dot,
        EmitArg::Summary if args.template.is_none() => {
            print!("{}", recspec::app::memory::model_card(&graph)?);
            return Ok(Exit::Ok);
        }
        EmitArg::Summary => Emit::Summary,
        EmitArg::Pytorch => {
            let program = recspec::app::lower_graph(&graph)?;
            print!("{}", recspec::pytorch::render(&program)?);
            return Ok(Exit::Ok);
        }
        EmitArg::Svg | EmitArg::Html if args.template.is_some() => {
            eprintln!("error: --template renders the graph view; it does not combine with --emit svg or html");
            return Ok(Exit::Error);
        }
        EmitArg::Svg => {
            print!("{}", pictures::architecture_svg(&graph)?);
            return Ok(Exit::Ok);
        }
        EmitArg::Html => {
            print!("{}", pictures::architecture_page(&graph)?);
            return Ok(Exit::Ok);
        }
    };
    let text = match args.template {
        Some(t) => render::render_user(&t, minijinja::context! { g => render::GraphView::new(&graph) }),
        None => render::emit(&graph, emit),
    }?;
    print!("{text}");
    Ok(Exit::Ok)
}
