//! Procedural macros behind `lockstep-sdk`: `#[derive(Row)]`, `#[transform]`
//! and `#[transform_columns]`. Use them through `lockstep_sdk`, which
//! documents them; the generated code refers to `::lockstep_sdk`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, FnArg, ItemFn, LitStr, ReturnType, parse_macro_input};

/// Derives `lockstep_sdk::Row` and generates `{Name}Columns<'a>` and
/// `{Name}Builder`. See the `lockstep_sdk` crate docs.
#[proc_macro_derive(Row, attributes(row))]
pub fn derive_row(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    row::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Generates the exports of a transform from a row function. See the
/// `lockstep_sdk` crate docs.
#[proc_macro_attribute]
pub fn transform(args: TokenStream, item: TokenStream) -> TokenStream {
    export::expand(args.into(), item.into(), export::Kind::Rows)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Generates the exports of a transform from a columns function. See the
/// `lockstep_sdk` crate docs.
#[proc_macro_attribute]
pub fn transform_columns(args: TokenStream, item: TokenStream) -> TokenStream {
    export::expand(args.into(), item.into(), export::Kind::Columns)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

mod row {
    //! `#[derive(Row)]`: the `Row` impl, the columns views and the builders.

    use syn::visit_mut::VisitMut;

    use super::*;

    /// One struct field as a column.
    struct Column {
        ident: syn::Ident,
        vis: syn::Visibility,
        /// The field's type as written.
        ty: syn::Type,
        /// With the struct's lifetime replaced by `'static`: the type of
        /// builders and fields, which do not depend on it.
        static_ty: syn::Type,
        /// With the struct's lifetime replaced by the views' `'a`: the type
        /// of views borrowing the batch for `'a` and of what they read.
        read_ty: syn::Type,
        name: String,
    }

    /// Replaces one lifetime by another throughout a type.
    struct ReplaceLifetime<'l> {
        from: &'l syn::Lifetime,
        to: &'l syn::Lifetime,
    }

    impl VisitMut for ReplaceLifetime<'_> {
        fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
            if lifetime.ident == self.from.ident {
                *lifetime = self.to.clone();
            }
        }
    }

    pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream2> {
        let generics = &input.generics;
        if generics.type_params().next().is_some() || generics.const_params().next().is_some() {
            return Err(syn::Error::new(
                generics.span(),
                "`#[derive(Row)]` does not support type or const parameters",
            ));
        }
        let mut lifetimes = generics.lifetimes();
        let lifetime = lifetimes.next().map(|param| &param.lifetime);
        if let Some(extra) = lifetimes.next() {
            return Err(syn::Error::new(
                extra.span(),
                "`#[derive(Row)]` supports at most one lifetime, the one of `&str` fields",
            ));
        }
        let Data::Struct(data) = &input.data else {
            return Err(syn::Error::new(
                Span::call_site(),
                "`#[derive(Row)]` needs a struct with named fields",
            ));
        };
        let Fields::Named(fields) = &data.fields else {
            return Err(syn::Error::new(
                data.fields.span(),
                "`#[derive(Row)]` needs a struct with named fields",
            ));
        };
        let view_lifetime = syn::Lifetime::new("'a", Span::call_site());
        let columns = fields
            .named
            .iter()
            .map(|field| column(field, lifetime, &view_lifetime))
            .collect::<syn::Result<Vec<_>>>()?;
        let Some(first) = columns.first() else {
            return Err(syn::Error::new(
                fields.span(),
                "a row needs at least one field",
            ));
        };
        for (i, column) in columns.iter().enumerate() {
            if columns[..i]
                .iter()
                .any(|earlier| earlier.name == column.name)
            {
                return Err(syn::Error::new(
                    column.ident.span(),
                    format!("two fields map to column `{}`", column.name),
                ));
            }
        }

        let row = &input.ident;
        let vis = &input.vis;
        let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
        // The row type as read from views borrowing the batch for `'a`, as
        // built (`'static`), and as a parameter type (`'_`).
        let (read_row, static_row, any_row) = match lifetime {
            Some(_) => (quote!(#row<'a>), quote!(#row<'static>), quote!(#row<'_>)),
            None => (quote!(#row), quote!(#row), quote!(#row)),
        };
        let columns_ty = format_ident!("{row}Columns");
        let builder_ty = format_ident!("{row}Builder");
        let idents: Vec<_> = columns.iter().map(|c| &c.ident).collect();
        let vises: Vec<_> = columns.iter().map(|c| &c.vis).collect();
        let tys: Vec<_> = columns.iter().map(|c| &c.ty).collect();
        let read_tys: Vec<_> = columns.iter().map(|c| &c.read_ty).collect();
        // Trait paths spanned at each field's type, so that an unsupported
        // type is reported on the field rather than on the derive.
        let static_columns: Vec<_> = columns
            .iter()
            .map(|c| {
                let ty = &c.static_ty;
                quote_spanned!(c.ty.span()=> <#ty as ::lockstep_sdk::ColumnType>)
            })
            .collect();
        let read_columns: Vec<_> = columns
            .iter()
            .map(|c| {
                let ty = &c.read_ty;
                quote_spanned!(c.ty.span()=> <#ty as ::lockstep_sdk::ColumnType>)
            })
            .collect();
        let names: Vec<_> = columns.iter().map(|c| &c.name).collect();
        let first = &first.ident;
        let columns_doc = format!(
            "Typed views of the input columns of [`{row}`], generated by `#[derive(Row)]`."
        );
        let builder_doc =
            format!("Builders for the output columns of [`{row}`], generated by `#[derive(Row)]`.");
        let view_docs = names.iter().map(|name| format!("Column `{name}`."));
        let builder_docs = names
            .iter()
            .map(|name| format!("Values of column `{name}`."));
        // Reading needs every field type to be readable from views borrowing
        // for `'a`; `&'static str` fields are not, making the row output-only.
        let readable = quote! {
            where #( #read_tys: ::lockstep_sdk::FromColumn<'a>, )*
        };

        Ok(quote! {
            #[doc = #columns_doc]
            #[derive(Clone, Copy, Debug)]
            #vis struct #columns_ty<'a> {
                #(
                    #[doc = #view_docs]
                    #vises #idents: #read_columns::View<'a>,
                )*
            }

            #[doc = #builder_doc]
            #[derive(Debug)]
            #vis struct #builder_ty {
                #(
                    #[doc = #builder_docs]
                    #vises #idents: #static_columns::Builder,
                )*
            }

            impl<'a> #columns_ty<'a> {
                /// The number of rows.
                #vis fn num_rows(&self) -> usize {
                    ::lockstep_sdk::ColumnView::len(&self.#first)
                }
            }

            impl<'a> #columns_ty<'a> #readable {
                /// Reads row `row`.
                ///
                /// # Panics
                ///
                /// If `row >= self.num_rows()`.
                #vis fn row(&self, row: usize) -> #read_row {
                    <Self as ::lockstep_sdk::RowColumns<'a>>::row(self, row)
                }
            }

            impl #builder_ty {
                /// Empty builders with room for `rows` rows.
                #vis fn with_capacity(rows: usize) -> Self {
                    <Self as ::lockstep_sdk::RowBuilder>::with_capacity(rows)
                }

                /// Appends one row.
                #vis fn push(&mut self, row: #any_row) {
                    ::lockstep_sdk::Row::write(row, self)
                }
            }

            impl<'a> ::lockstep_sdk::RowColumns<'a> for #columns_ty<'a> #readable {
                type Row = #read_row;

                fn from_batch(
                    batch: &'a ::lockstep_sdk::Batch,
                ) -> ::core::result::Result<Self, ::lockstep_sdk::TransformError> {
                    ::core::result::Result::Ok(Self {
                        #(
                            #idents: #read_columns::view(batch, #names)?,
                        )*
                    })
                }

                fn num_rows(&self) -> usize {
                    ::lockstep_sdk::ColumnView::len(&self.#first)
                }

                #[inline(always)]
                fn row(&self, row: usize) -> #read_row {
                    #row {
                        #(
                            #idents: <#read_tys as ::lockstep_sdk::FromColumn<'a>>::get(&self.#idents, row),
                        )*
                    }
                }
            }

            impl ::lockstep_sdk::RowBuilder for #builder_ty {
                type Row = #static_row;

                fn with_capacity(rows: usize) -> Self {
                    Self {
                        #( #idents: ::lockstep_sdk::ColumnBuilder::with_capacity(rows), )*
                    }
                }

                fn finish(
                    self,
                ) -> ::core::result::Result<::lockstep_sdk::Batch, ::lockstep_sdk::TransformError> {
                    let num_rows = ::lockstep_sdk::__private::common_len(&[
                        #( (#names, ::lockstep_sdk::ColumnBuilder::len(&self.#idents)), )*
                    ])?;
                    ::core::result::Result::Ok(::lockstep_sdk::Batch {
                        num_rows,
                        columns: ::std::vec![
                            #( ::lockstep_sdk::ColumnBuilder::finish(self.#idents, #names)?, )*
                        ],
                    })
                }
            }

            impl #impl_generics ::lockstep_sdk::Row for #row #ty_generics #where_clause {
                type Columns<'__lockstep_batch> = #columns_ty<'__lockstep_batch>;
                type Builder = #builder_ty;

                fn fields() -> ::std::vec::Vec<::lockstep_sdk::Field> {
                    ::std::vec![
                        #( #static_columns::field(#names), )*
                    ]
                }

                #[inline(always)]
                fn write(self, builder: &mut #builder_ty) {
                    #(
                        ::lockstep_sdk::Append::<#tys>::append(&mut builder.#idents, self.#idents);
                    )*
                }
            }
        })
    }

    fn column(
        field: &syn::Field,
        lifetime: Option<&syn::Lifetime>,
        view_lifetime: &syn::Lifetime,
    ) -> syn::Result<Column> {
        let ident = field.ident.clone().expect("named fields have identifiers");
        let mut name = ident.to_string().trim_start_matches("r#").to_owned();
        for attr in field
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("row"))
        {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let rename: LitStr = meta.value()?.parse()?;
                    if rename.value().is_empty() {
                        return Err(syn::Error::new(
                            rename.span(),
                            "a column name must not be empty",
                        ));
                    }
                    name = rename.value();
                    Ok(())
                } else {
                    Err(meta.error("unknown `row` attribute; expected `rename = \"column_name\"`"))
                }
            })?;
        }
        let mut static_ty = field.ty.clone();
        let mut read_ty = field.ty.clone();
        if let Some(from) = lifetime {
            let to_static = syn::Lifetime::new("'static", Span::call_site());
            ReplaceLifetime {
                from,
                to: &to_static,
            }
            .visit_type_mut(&mut static_ty);
            ReplaceLifetime {
                from,
                to: view_lifetime,
            }
            .visit_type_mut(&mut read_ty);
        }
        Ok(Column {
            ident,
            vis: field.vis.clone(),
            ty: field.ty.clone(),
            static_ty,
            read_ty,
            name,
        })
    }
}

mod export {
    //! `#[transform]` and `#[transform_columns]`: the user's function, kept
    //! as written, plus a `Guest` impl and the wasm exports.

    use super::*;

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Kind {
        Rows,
        Columns,
    }

    struct Args {
        name: LitStr,
        version: LitStr,
    }

    pub(crate) fn expand(
        args: TokenStream2,
        item: TokenStream2,
        kind: Kind,
    ) -> syn::Result<TokenStream2> {
        let args = parse_args(args)?;
        let function: ItemFn = syn::parse2(item)?;
        check_signature(&function, kind)?;

        let name = &args.name;
        let version = &args.version;
        let ident = &function.sig.ident;
        let (signature, run) = match kind {
            Kind::Rows => (
                quote!(::lockstep_sdk::__private::row_signature),
                quote!(::lockstep_sdk::run_rows),
            ),
            Kind::Columns => (
                quote!(::lockstep_sdk::__private::columns_signature),
                quote!(::lockstep_sdk::run_columns),
            ),
        };

        Ok(quote! {
            #function

            const _: () = {
                struct __LockstepTransform;

                impl ::lockstep_sdk::Guest for __LockstepTransform {
                    fn signature() -> ::lockstep_sdk::Signature {
                        ::lockstep_sdk::install_panic_hook();
                        #signature(#name, #version, #ident)
                    }

                    fn transform(
                        input: ::lockstep_sdk::Batch,
                    ) -> ::core::result::Result<::lockstep_sdk::Batch, ::lockstep_sdk::TransformError> {
                        ::lockstep_sdk::install_panic_hook();
                        #run(&input, #ident)
                    }
                }

                ::lockstep_sdk::export!(__LockstepTransform);
            };
        })
    }

    fn parse_args(args: TokenStream2) -> syn::Result<Args> {
        let mut name = None;
        let mut version = None;
        let parser = syn::meta::parser(|meta| {
            let slot = if meta.path.is_ident("name") {
                &mut name
            } else if meta.path.is_ident("version") {
                &mut version
            } else {
                return Err(
                    meta.error("unknown argument; expected `name = \"…\"` and `version = \"…\"`")
                );
            };
            if slot.is_some() {
                return Err(meta.error("duplicate argument"));
            }
            *slot = Some(meta.value()?.parse::<LitStr>()?);
            Ok(())
        });
        syn::parse::Parser::parse2(parser, args)?;
        let missing = |what| {
            syn::Error::new(
                Span::call_site(),
                format!("missing `{what} = \"…\"` argument"),
            )
        };
        let name = name.ok_or_else(|| missing("name"))?;
        let version = version.ok_or_else(|| missing("version"))?;
        let valid_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if name.value().is_empty() || !name.value().chars().all(valid_name) {
            return Err(syn::Error::new(
                name.span(),
                "a transform name is non-empty ASCII letters, digits, `_`, `-` or `.`",
            ));
        }
        if version.value().trim().is_empty() || version.value().chars().any(char::is_whitespace) {
            return Err(syn::Error::new(
                version.span(),
                "a transform version is non-empty and has no whitespace",
            ));
        }
        Ok(Args { name, version })
    }

    fn check_signature(function: &ItemFn, kind: Kind) -> syn::Result<()> {
        let sig = &function.sig;
        let what = match kind {
            Kind::Rows => "`#[transform]` expects `fn(InputRow) -> OutputRow`",
            Kind::Columns => {
                "`#[transform_columns]` expects `fn(InputColumns<'_>) -> OutputBuilder`"
            }
        };
        if let Some(asyncness) = &sig.asyncness {
            return Err(syn::Error::new(
                asyncness.span(),
                format!("{what}; it cannot be async"),
            ));
        }
        if !sig.generics.params.is_empty() && kind == Kind::Rows {
            return Err(syn::Error::new(
                sig.generics.span(),
                format!("{what}; it cannot be generic"),
            ));
        }
        if sig.generics.type_params().next().is_some()
            || sig.generics.const_params().next().is_some()
        {
            return Err(syn::Error::new(
                sig.generics.span(),
                format!("{what}; it cannot be generic"),
            ));
        }
        if sig.inputs.len() != 1 || matches!(sig.inputs.first(), Some(FnArg::Receiver(_))) {
            return Err(syn::Error::new(
                sig.inputs.span(),
                format!("{what}: exactly one argument"),
            ));
        }
        if matches!(sig.output, ReturnType::Default) {
            return Err(syn::Error::new(
                sig.span(),
                format!("{what}: it must return the output"),
            ));
        }
        Ok(())
    }
}
