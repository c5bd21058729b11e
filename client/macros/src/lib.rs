//! Attribute macros of the `zibrato` crate: `#[count_me]` and `#[time_me]`.
//!
//! Use them through `zibrato` (`#[zibrato::count_me(...)]`), which re-exports
//! them and provides what they expand to. Each inserts one statement at the
//! top of the function's body and leaves everything else (signature,
//! attributes, docs, return value) as it was; in an `async fn` the body is the
//! future, so the statement runs when the future is first polled.

#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::Literal;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, ItemFn, Lit, LitStr, Meta, Token, UnOp};
use zibrato_backend_api::labels::{check_key, check_value, LabelError, MAX_LABELS};

/// Counts each call of the function on the process-wide default client.
///
/// `#[zibrato::count_me(level = "info", name = "calls", value = 5, source = "web")]`
///
/// `level` is required; `name` defaults to the function's name, `value` to 1,
/// `source` to none, labels to none. Works on free functions, methods,
/// generic and `async` functions; the count is sent when the call starts.
///
/// Labels: `labels(route = "/api", method = "GET")`; a key that is not a
/// Rust identifier is written as a string (`labels("http.method" = "GET")`).
/// They are checked against the label rules at compile time (a bad or
/// reserved key, a bad value, an empty value, a key twice, too many labels
/// are errors) and sorted, so the call costs what a static slice does.
#[proc_macro_attribute]
pub fn count_me(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Form::Count, args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Times each call of the function on the process-wide default client and
/// sends the elapsed seconds when it returns (or unwinds). For an `async fn`
/// it times the whole future, from its first poll to its completion.
///
/// `#[zibrato::time_me(level = "debug", name = "work", source = "web", labels(db = "orders"))]`
///
/// `level` is required; `name` defaults to the function's name, `source` to
/// none, labels to none (written as for [`count_me`](macro@count_me)).
#[proc_macro_attribute]
pub fn time_me(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Form::Time, args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[derive(Clone, Copy, PartialEq)]
enum Form {
    Count,
    Time,
}

impl Form {
    fn attribute(self) -> &'static str {
        match self {
            Form::Count => "count_me",
            Form::Time => "time_me",
        }
    }

    fn keys(self) -> &'static str {
        match self {
            Form::Count => "`level`, `name`, `value`, `source` or `labels(...)`",
            Form::Time => "`level`, `name`, `source` or `labels(...)`",
        }
    }
}

/// The arguments, checked.
struct Args {
    level: Option<LitStr>,
    name: Option<LitStr>,
    /// The value as an `f64` expression.
    value: Option<TokenStream2>,
    source: Option<LitStr>,
    /// Checked, sorted by key.
    labels: Option<Vec<(String, LitStr)>>,
}

fn expand(form: Form, args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(form, args)?;
    let mut function: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!(
                "#[zibrato::{}] applies to a function with a body",
                form.attribute()
            ),
        )
    })?;
    if let Some(constness) = &function.sig.constness {
        return Err(syn::Error::new(
            constness.span(),
            format!(
                "#[zibrato::{}] cannot be used on a `const fn`",
                form.attribute()
            ),
        ));
    }
    let Some(level) = args.level else {
        return Err(syn::Error::new(
            Span::call_site(),
            format!(
                "#[zibrato::{}] needs a level: add `level = \"info\"`",
                form.attribute()
            ),
        ));
    };
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&function.sig.ident.to_string(), function.sig.ident.span()));
    let source = match args.source {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    };
    let labels = args.labels.unwrap_or_default();
    let (keys, values): (Vec<_>, Vec<_>) = labels.into_iter().unzip();
    let labels = quote!(&[#((#keys, #values)),*]);
    let guard = syn::Ident::new("__zibrato_guard", Span::mixed_site());
    let statement: TokenStream2 = match form {
        Form::Count => {
            let value = args.value.unwrap_or_else(|| quote!(1.0_f64));
            quote! {
                ::zibrato::__private::count(#level, #name, #value, #source, #labels);
            }
        }
        Form::Time => quote! {
            let #guard = ::zibrato::__private::time(#level, #name, #source, #labels);
        },
    };
    let statement: syn::Stmt = syn::parse2(statement)?;
    function.block.stmts.insert(0, statement);
    Ok(quote!(#function))
}

fn parse_args(form: Form, args: TokenStream2) -> syn::Result<Args> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut out = Args {
        level: None,
        name: None,
        value: None,
        source: None,
        labels: None,
    };
    for meta in metas {
        if let Meta::List(list) = &meta {
            if list.path.is_ident("labels") {
                if out.labels.is_some() {
                    return Err(syn::Error::new(
                        list.path.span(),
                        "`labels` is given more than once",
                    ));
                }
                out.labels = Some(labels(list)?);
                continue;
            }
        }
        let Meta::NameValue(nv) = meta else {
            return Err(syn::Error::new(
                meta.span(),
                format!(
                    "expected `key = value` with key {}, e.g. `level = \"info\"`",
                    form.keys()
                ),
            ));
        };
        let key = nv
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let duplicate =
            || syn::Error::new(nv.path.span(), format!("`{key}` is given more than once"));
        match key.as_str() {
            "level" => {
                if out.level.is_some() {
                    return Err(duplicate());
                }
                let level = string(&nv.value, "level")?;
                if level.value().is_empty() {
                    return Err(syn::Error::new(level.span(), "the level cannot be empty"));
                }
                out.level = Some(level);
            }
            "name" => {
                if out.name.is_some() {
                    return Err(duplicate());
                }
                let name = string(&nv.value, "name")?;
                if name.value().is_empty() {
                    return Err(syn::Error::new(name.span(), "the name cannot be empty"));
                }
                out.name = Some(name);
            }
            "source" => {
                if out.source.is_some() {
                    return Err(duplicate());
                }
                out.source = Some(string(&nv.value, "source")?);
            }
            "value" if form == Form::Count => {
                if out.value.is_some() {
                    return Err(duplicate());
                }
                out.value = Some(number(&nv.value)?);
            }
            "value" => {
                return Err(syn::Error::new(
                    nv.path.span(),
                    "#[zibrato::time_me] takes no `value`: a timer sends the elapsed seconds",
                ));
            }
            _ => {
                return Err(syn::Error::new(
                    nv.path.span(),
                    format!(
                        "unknown argument `{}`: expected {}",
                        path_text(&nv.path),
                        form.keys()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// One label as written: `key = "value"`, the key an identifier or a string.
struct LabelArg {
    key: String,
    key_span: Span,
    value: LitStr,
}

impl syn::parse::Parse for LabelArg {
    fn parse(input: syn::parse::ParseStream) -> syn::Result<LabelArg> {
        let (key, key_span) = if input.peek(LitStr) {
            let key: LitStr = input.parse()?;
            (key.value(), key.span())
        } else {
            // Keywords (`type`) are keys too.
            let key = syn::Ident::parse_any(input).map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected a label `key = \"value\"`, e.g. `route = \"/api\"`",
                )
            })?;
            (key.unraw().to_string(), key.span())
        };
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        let Expr::Lit(ExprLit {
            lit: Lit::Str(value),
            ..
        }) = value
        else {
            return Err(syn::Error::new(
                value.span(),
                format!("a label value is a string literal: `{key} = \"...\"`"),
            ));
        };
        Ok(LabelArg {
            key,
            key_span,
            value,
        })
    }
}

/// `labels(k = "v", ...)`, checked against the label rules and sorted by key.
fn labels(list: &syn::MetaList) -> syn::Result<Vec<(String, LitStr)>> {
    let args = list.parse_args_with(Punctuated::<LabelArg, Token![,]>::parse_terminated)?;
    let mut out: Vec<(String, LitStr)> = Vec::new();
    for arg in args {
        let error = |e: LabelError| syn::Error::new(arg.key_span, e.to_string());
        check_key(&arg.key).map_err(error)?;
        if out.iter().any(|(key, _)| *key == arg.key) {
            return Err(error(LabelError::DuplicateKey));
        }
        let value = arg.value.value();
        if value.is_empty() {
            return Err(syn::Error::new(
                arg.value.span(),
                "an empty label value means no label: leave the label out",
            ));
        }
        check_value(&value).map_err(|e| syn::Error::new(arg.value.span(), e.to_string()))?;
        if out.len() == MAX_LABELS {
            return Err(error(LabelError::TooMany));
        }
        out.push((arg.key, arg.value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A path as written, e.g. `lvl` or `a::b`.
fn path_text(path: &syn::Path) -> String {
    quote!(#path).to_string().replace(' ', "")
}

/// A string literal without `|` or line breaks, which the wire cannot carry.
fn string(expr: &Expr, key: &str) -> syn::Result<LitStr> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(s), ..
    }) = expr
    else {
        return Err(syn::Error::new(
            expr.span(),
            format!("`{key}` takes a string literal, e.g. `{key} = \"info\"`"),
        ));
    };
    if s.value().contains(['|', '\n', '\r']) {
        return Err(syn::Error::new(
            s.span(),
            format!("`{key}` cannot contain `|` or a line break (the wire format's separators)"),
        ));
    }
    Ok(s.clone())
}

/// An integer or float literal, possibly negative, as an `f64` literal (so
/// the expansion needs no cast for lints to flag).
fn number(expr: &Expr) -> syn::Result<TokenStream2> {
    let bad = || {
        syn::Error::new(
            expr.span(),
            "`value` takes a number literal, e.g. `value = 5` or `value = 0.5`",
        )
    };
    let (negative, lit) = match expr {
        Expr::Lit(ExprLit { lit, .. }) => (false, lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit { lit, .. }) => (true, lit),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let value: f64 = match lit {
        Lit::Int(i) => i.base10_parse::<u128>()? as f64,
        Lit::Float(f) => f.base10_parse::<f64>()?,
        _ => return Err(bad()),
    };
    if !value.is_finite() {
        return Err(syn::Error::new(
            expr.span(),
            "`value` must be a finite number",
        ));
    }
    let literal = Literal::f64_unsuffixed(value);
    Ok(if negative {
        quote!(-#literal)
    } else {
        quote!(#literal)
    })
}
