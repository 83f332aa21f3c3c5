//! Derive macros for TPF v1 (`tamtam-tpf`): `#[derive(Tpf)]` for message structs and
//! `#[derive(TpfEnum)]` for enums. Use them through `tamtam_tpf::{Tpf, TpfEnum}`; the
//! attributes are described in the `tamtam_tpf` crate documentation.
//!
//! The generated code leans on the `tamtam_tpf::Field` trait for everything that depends on
//! a field's type, so the macro never needs to know whether a field is fixed-size or
//! variable: it emits the same calls for every field and the trait's constants decide.
//! What the macro can check from the tokens alone (ids present, `since` within the version
//! and non-decreasing, maxima below `0xFFFF_FFFF`) it checks here; what needs the types
//! (the number of maxima a type consumes, that late fields are optional) it checks with
//! `const` assertions in the generated code.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitInt, LitStr, Path, parse_macro_input};

/// Implements `tamtam_tpf::TpfMessage` (and `tamtam_tpf::Field`) for a struct with named
/// fields, and generates its fixed-block struct `<Name>Fixed` and view `<Name>View<'a>`.
#[proc_macro_derive(Tpf, attributes(tpf))]
pub fn derive_tpf(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match message(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Implements `tamtam_tpf::TpfEnum` (and `tamtam_tpf::Field`) for a fieldless enum with a
/// `#[repr(u8)]`, `#[repr(u16)]`, `#[repr(u32)]` or `#[repr(u64)]`.
#[proc_macro_derive(TpfEnum, attributes(tpf))]
pub fn derive_tpf_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match enumeration(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Options on the struct or enum.
struct TypeOptions {
    schema: Option<u16>,
    template: Option<u16>,
    version: u16,
    name: Option<String>,
    krate: Path,
}

fn type_options(input: &DeriveInput) -> syn::Result<TypeOptions> {
    let mut options = TypeOptions {
        schema: None,
        template: None,
        version: 1,
        name: None,
        krate: syn::parse_quote!(::tamtam_tpf),
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("tpf")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("schema") {
                options.schema = Some(meta.value()?.parse::<LitInt>()?.base10_parse()?);
            } else if meta.path.is_ident("template") {
                options.template = Some(meta.value()?.parse::<LitInt>()?.base10_parse()?);
            } else if meta.path.is_ident("version") {
                options.version = meta.value()?.parse::<LitInt>()?.base10_parse()?;
            } else if meta.path.is_ident("name") {
                options.name = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("crate") {
                options.krate = meta.value()?.parse::<LitStr>()?.parse()?;
            } else {
                return Err(
                    meta.error("expected `schema`, `template`, `version`, `name` or `crate`")
                );
            }
            Ok(())
        })?;
    }
    Ok(options)
}

/// Options on a field.
struct FieldOptions {
    since: u16,
    maxima: Vec<u32>,
}

fn field_options(field: &syn::Field) -> syn::Result<FieldOptions> {
    let mut since = 1u16;
    let mut max: Option<u32> = None;
    let mut item_max: Option<u32> = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("tpf")) {
        attr.parse_nested_meta(|meta| {
            let value = |meta: &syn::meta::ParseNestedMeta| -> syn::Result<u32> {
                let lit = meta.value()?.parse::<LitInt>()?;
                let value: u32 = lit.base10_parse()?;
                if value == u32::MAX {
                    return Err(syn::Error::new(
                        lit.span(),
                        "maxima must be below 0xFFFF_FFFF, the absent marker",
                    ));
                }
                Ok(value)
            };
            if meta.path.is_ident("since") {
                since = meta.value()?.parse::<LitInt>()?.base10_parse()?;
            } else if meta.path.is_ident("max") {
                max = Some(value(&meta)?);
            } else if meta.path.is_ident("item_max") {
                item_max = Some(value(&meta)?);
            } else {
                return Err(meta.error("expected `since`, `max` or `item_max`"));
            }
            Ok(())
        })?;
    }
    let maxima = match (max, item_max) {
        (None, None) => vec![],
        (Some(max), None) => vec![max],
        (Some(max), Some(item_max)) => vec![max, item_max],
        (None, Some(_)) => {
            return Err(syn::Error::new(
                field.span(),
                "`item_max` needs `max` for the list itself",
            ));
        }
    };
    Ok(FieldOptions { since, maxima })
}

/// Methods every view has; a field may not take their names.
const VIEW_METHODS: [&str; 3] = ["fixed_block", "payload_version", "to_owned_message"];

fn message(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let ident = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "TPF messages cannot be generic",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Tpf)] works on structs; use #[derive(TpfEnum)] for enums",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Tpf)] needs a struct with named fields",
        ));
    };
    let options = type_options(input)?;
    let krate = &options.krate;
    let (Some(schema_id), Some(template_id)) = (options.schema, options.template) else {
        return Err(syn::Error::new(
            input.span(),
            "missing #[tpf(schema = .., template = ..)]",
        ));
    };
    let version = options.version;
    if version == 0 {
        return Err(syn::Error::new(input.span(), "TPF versions start at 1"));
    }
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| ident.unraw().to_string());
    let vis = &input.vis;
    let fixed_ident = format_ident!("{}Fixed", ident);
    let view_ident = format_ident!("{}View", ident);

    let mut since_last = 1u16;
    let mut fixed_fields = Vec::new();
    let mut slot_fields = Vec::new();
    let mut accessors = Vec::new();
    let mut owned_fields = Vec::new();
    let mut asserts = Vec::new();
    let mut block_terms = Vec::new();
    let mut size_terms = Vec::new();
    let mut len_terms = Vec::new();
    let mut encode_stmts = Vec::new();
    let mut check_stmts = Vec::new();
    let mut decode_fields = Vec::new();
    let mut view_slots = Vec::new();
    let mut field_defs = Vec::new();
    let mut values = Vec::new();

    for field in &named.named {
        let f = field.ident.as_ref().expect("named fields have identifiers");
        let ty = &field.ty;
        let field_name = f.unraw().to_string();
        if VIEW_METHODS.contains(&field_name.as_str()) {
            return Err(syn::Error::new(
                f.span(),
                format!("field name `{field_name}` clashes with a method of the generated view"),
            ));
        }
        let opts = field_options(field)?;
        let since = opts.since;
        if since == 0 || since > version {
            return Err(syn::Error::new(
                field.span(),
                format!("`since` must be between 1 and the message version {version}"),
            ));
        }
        if since < since_last {
            return Err(syn::Error::new(
                field.span(),
                "fields are append-only: `since` may not decrease in declaration order",
            ));
        }
        since_last = since;
        let maxima = &opts.maxima;
        let maxima_count = maxima.len();
        let slot = format_ident!("slot_{}", f.unraw());
        let field_trait = quote!(<#ty as #krate::Field>);
        let ctx = quote!(#krate::field::Ctx { field: #field_name, maxima: &[#(#maxima),*], depth });

        let maxima_message = format!(
            "field `{field_name}` of `{ident}` must declare one maximum per variable-length level \
             (#[tpf(max = ..)] for a string, byte string or list, plus #[tpf(item_max = ..)] for \
             the items of a list of strings, byte strings or lists; deeper nesting needs a message)"
        );
        asserts.push(quote!(assert!(#field_trait::MAXIMA == #maxima_count, #maxima_message);));
        if since > 1 {
            let late_message = format!(
                "field `{field_name}` of `{ident}` was added after version 1 and must be an Option"
            );
            asserts.push(quote!(assert!(#field_trait::OPTIONAL, #late_message);));
        }

        let wire_doc = format!("Wire form of `{field_name}` (`()` when it is a variable field).");
        fixed_fields.push(quote!(#[doc = #wire_doc] pub #f: #field_trait::Wire));
        slot_fields.push(quote!(#slot: #field_trait::Slot<'a>));
        let accessor_doc = format!("The field `{field_name}`, read in place.");
        accessors.push(quote! {
            #[doc = #accessor_doc]
            #[inline]
            pub fn #f(&self) -> #field_trait::View<'a> {
                #field_trait::view_field(&self.fixed.#f, self.#slot)
            }
        });
        owned_fields.push(quote!(#f: #field_trait::from_view(self.#f())));
        block_terms.push(quote!(if #since <= version { length += #field_trait::FIXED_SIZE; }));
        size_terms.push(quote!(#field_trait::FIXED_SIZE));
        len_terms.push(quote!(#field_trait::field_len(&self.#f)));
        encode_stmts
            .push(quote!(#field_trait::encode_field(&self.#f, &mut fixed.#f, writer, &#ctx)?;));
        check_stmts.push(quote!(#field_trait::check_wire(&fixed.#f, &#ctx)?;));
        decode_fields.push(
            quote!(#f: #field_trait::decode_field(&fixed.#f, parts, #since <= version, &#ctx)?),
        );
        view_slots.push(quote!(#slot: #field_trait::view_slot(parts, #since <= version, &#ctx)?));
        field_defs.push(quote! {
            #krate::schema::FieldDef {
                name: #krate::__private::String::from(#field_name),
                ty: #field_trait::field_type(&[#(#maxima),*], schema),
                since: #since,
            }
        });
        values.push(quote!(#field_trait::to_value(&self.#f)));
    }

    let zerocopy_path = format!("{}::zerocopy", quote!(#krate).to_string().replace(' ', ""));
    let fixed_doc = format!(
        "The fixed block of [`{ident}`] at version {version}: its fixed-size fields as little-endian \
         zerocopy types, packed in declaration order (variable fields appear as zero-sized `()`)."
    );
    let view_doc = format!(
        "A validated view of a [`{ident}`] payload: the fixed block is read in place through \
         [`{fixed_ident}`], strings and byte strings are borrowed from the payload. Every read is infallible."
    );
    let name_lit = LitStr::new(&name, Span::call_site());
    let view_name = view_ident.to_string();
    let field_idents: Vec<&Ident> = named
        .named
        .iter()
        .filter_map(|f| f.ident.as_ref())
        .collect();
    let field_names: Vec<String> = field_idents.iter().map(|f| f.unraw().to_string()).collect();
    let size_message = format!(
        "the fixed block of `{ident}` must be the sum of its fields and at most 65535 bytes"
    );

    Ok(quote! {
        #[doc = #fixed_doc]
        #[derive(
            #krate::zerocopy::FromBytes,
            #krate::zerocopy::IntoBytes,
            #krate::zerocopy::KnownLayout,
            #krate::zerocopy::Immutable,
            #krate::zerocopy::Unaligned,
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::fmt::Debug
        )]
        #[zerocopy(crate = #zerocopy_path)]
        #[repr(C)]
        #vis struct #fixed_ident {
            #(#fixed_fields,)*
        }

        #[doc = #view_doc]
        #[derive(::core::clone::Clone, ::core::marker::Copy)]
        #vis struct #view_ident<'a> {
            fixed: #krate::FixedRef<'a, #fixed_ident>,
            version: u16,
            #(#slot_fields,)*
        }

        impl<'a> #view_ident<'a> {
            /// The fixed block, read in place through its zerocopy struct (a zero-extended
            /// copy when the payload is from an older version with a shorter block).
            #[inline]
            pub fn fixed_block(&self) -> &#fixed_ident {
                &self.fixed
            }

            /// The version the payload was encoded at.
            #[inline]
            pub fn payload_version(&self) -> u16 {
                self.version
            }

            /// Copies the viewed message into an owned value.
            pub fn to_owned_message(&self) -> #ident {
                #ident { #(#owned_fields,)* }
            }

            #(#accessors)*
        }

        impl ::core::fmt::Debug for #view_ident<'_> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#view_name)
                    #(.field(#field_names, &self.#field_idents()))*
                    .finish()
            }
        }

        const _: () = {
            #(#asserts)*
            let size = 0usize #(+ #size_terms)*;
            assert!(size == ::core::mem::size_of::<#fixed_ident>() && size <= 65535, #size_message);
        };

        impl #krate::TpfMessage for #ident {
            const NAME: &'static str = #name_lit;
            const SCHEMA_ID: u16 = #schema_id;
            const TEMPLATE_ID: u16 = #template_id;
            const VERSION: u16 = #version;
            type Fixed = #fixed_ident;

            #[inline]
            fn block_length(version: u16) -> u16 {
                let mut length = 0usize;
                #(#block_terms)*
                length as u16
            }

            #[inline]
            fn body_len(&self) -> usize {
                0usize #(+ #len_terms)*
            }

            #[inline]
            fn encode_body(
                &self,
                fixed: &mut #fixed_ident,
                writer: &mut #krate::wire::Writer<'_>,
                depth: usize,
            ) -> ::core::result::Result<(), #krate::Error> {
                #(#encode_stmts)*
                let _ = (fixed, writer, depth);
                ::core::result::Result::Ok(())
            }

            #[inline]
            fn check_fixed(fixed: &#fixed_ident, depth: usize) -> ::core::result::Result<(), #krate::Error> {
                #(#check_stmts)*
                let _ = (fixed, depth);
                ::core::result::Result::Ok(())
            }

            #[inline]
            fn decode_body(
                fixed: &#fixed_ident,
                parts: &mut #krate::wire::Reader<'_>,
                version: u16,
                depth: usize,
            ) -> ::core::result::Result<Self, #krate::Error> {
                let _ = (fixed, &parts, version, depth);
                ::core::result::Result::Ok(#ident { #(#decode_fields,)* })
            }

            #[inline]
            fn view_body<'a>(
                fixed: #krate::FixedRef<'a, #fixed_ident>,
                parts: &mut #krate::wire::Reader<'a>,
                version: u16,
                depth: usize,
            ) -> ::core::result::Result<#view_ident<'a>, #krate::Error> {
                let _ = (&parts, version, depth);
                ::core::result::Result::Ok(#view_ident { #(#view_slots,)* fixed, version })
            }

            fn field_defs(schema: &mut #krate::schema::Schema) -> #krate::__private::Vec<#krate::schema::FieldDef> {
                let _ = &schema;
                #krate::__private::Vec::from([#(#field_defs),*])
            }
        }

        impl #krate::Field for #ident {
            const FIXED_SIZE: usize = 0;
            const MAXIMA: usize = 0;
            const OPTIONAL: bool = false;
            type Wire = ();
            type View<'a> = #view_ident<'a>;
            type Slot<'a> = #view_ident<'a>;

            fn field_type(_: &[u32], schema: &mut #krate::schema::Schema) -> #krate::schema::Type {
                #krate::message::nested::field_type::<Self>(schema)
            }
            fn to_value(&self) -> #krate::dynamic::Value {
                #krate::dynamic::Value::Message(#krate::dynamic::MessageValue {
                    version: <Self as #krate::TpfMessage>::VERSION,
                    fields: #krate::__private::Vec::from([#(#values),*]),
                })
            }
            #[inline]
            fn part_len(&self) -> usize {
                #krate::message::nested::part_len(self)
            }
            #[inline]
            fn encode_part(
                &self,
                writer: &mut #krate::wire::Writer<'_>,
                ctx: &#krate::field::Ctx,
            ) -> ::core::result::Result<(), #krate::Error> {
                #krate::message::nested::encode_part(self, writer, ctx)
            }
            #[inline]
            fn decode_part(
                reader: &mut #krate::wire::Reader<'_>,
                ctx: &#krate::field::Ctx,
            ) -> ::core::result::Result<Self, #krate::Error> {
                #krate::message::nested::decode_part::<Self>(reader, ctx)
            }
            #[inline]
            fn view_part<'a>(
                reader: &mut #krate::wire::Reader<'a>,
                ctx: &#krate::field::Ctx,
            ) -> ::core::result::Result<#view_ident<'a>, #krate::Error> {
                #krate::message::nested::view_part::<Self>(reader, ctx)
            }
            fn view_slot<'a>(
                reader: &mut #krate::wire::Reader<'a>,
                present: bool,
                ctx: &#krate::field::Ctx,
            ) -> ::core::result::Result<#view_ident<'a>, #krate::Error> {
                // Required message fields exist since version 1, so they are always present.
                debug_assert!(present);
                Self::view_part(reader, ctx)
            }
            #[inline]
            fn view_field<'a>(_: &(), slot: <Self as #krate::Field>::Slot<'a>) -> <Self as #krate::Field>::View<'a> {
                slot
            }
            fn from_view(view: #view_ident<'_>) -> Self {
                view.to_owned_message()
            }
        }
    })
}

fn enumeration(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let ident = &input.ident;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(TpfEnum)] works on enums",
        ));
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "TPF enums cannot be generic",
        ));
    }
    let options = type_options(input)?;
    if options.schema.is_some() || options.template.is_some() || options.version != 1 {
        return Err(syn::Error::new(
            input.span(),
            "enums take only `name` and `crate` options",
        ));
    }
    let krate = &options.krate;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| ident.unraw().to_string());
    let repr = repr(input)?;
    let (repr_ty, repr_variant, wire, to_wire, get) = match repr.to_string().as_str() {
        "u8" => (
            quote!(u8),
            quote!(U8),
            quote!(u8),
            quote!(*self as u8),
            quote!(u64::from(*wire)),
        ),
        "u16" => (
            quote!(u16),
            quote!(U16),
            quote!(#krate::zerocopy::byteorder::little_endian::U16),
            quote!(#krate::zerocopy::byteorder::little_endian::U16::new(*self as u16)),
            quote!(u64::from(wire.get())),
        ),
        "u32" => (
            quote!(u32),
            quote!(U32),
            quote!(#krate::zerocopy::byteorder::little_endian::U32),
            quote!(#krate::zerocopy::byteorder::little_endian::U32::new(*self as u32)),
            quote!(u64::from(wire.get())),
        ),
        "u64" => (
            quote!(u64),
            quote!(U64),
            quote!(#krate::zerocopy::byteorder::little_endian::U64),
            quote!(#krate::zerocopy::byteorder::little_endian::U64::new(*self as u64)),
            quote!(wire.get()),
        ),
        _ => {
            return Err(syn::Error::new(
                repr.span(),
                "TPF enums need #[repr(u8)], #[repr(u16)], #[repr(u32)] or #[repr(u64)]",
            ));
        }
    };
    if data.variants.is_empty() {
        return Err(syn::Error::new(
            input.span(),
            "TPF enums need at least one variant",
        ));
    }
    let mut variants = Vec::new();
    let mut arms = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            return Err(syn::Error::new(
                variant.span(),
                "TPF enum variants cannot carry fields",
            ));
        }
        let v = &variant.ident;
        let v_name = v.unraw().to_string();
        variants.push(quote!((#v_name, #ident::#v as #repr_ty as u64)));
        arms.push(quote!(if value == #ident::#v as #repr_ty as u64 { return ::core::option::Option::Some(#ident::#v); }));
    }
    let name_lit = LitStr::new(&name, Span::call_site());
    Ok(quote! {
        impl #krate::TpfEnum for #ident {
            const NAME: &'static str = #name_lit;
            const REPR: #krate::schema::Repr = #krate::schema::Repr::#repr_variant;
            const VARIANTS: &'static [(&'static str, u64)] = &[#(#variants),*];

            #[inline]
            fn to_repr(self) -> u64 {
                self as #repr_ty as u64
            }

            #[inline]
            fn from_repr(value: u64) -> ::core::option::Option<Self> {
                #(#arms)*
                ::core::option::Option::None
            }
        }

        impl #krate::Field for #ident {
            const FIXED_SIZE: usize = ::core::mem::size_of::<#wire>();
            const MAXIMA: usize = 0;
            const OPTIONAL: bool = false;
            type Wire = #wire;
            type View<'a> = Self;
            type Slot<'a> = ();

            fn field_type(_: &[u32], schema: &mut #krate::schema::Schema) -> #krate::schema::Type {
                #krate::field::enums::field_type::<Self>(schema)
            }
            fn to_value(&self) -> #krate::dynamic::Value {
                #krate::dynamic::Value::Enum(#krate::TpfEnum::to_repr(*self))
            }
            #[inline]
            fn to_wire(&self) -> #wire {
                #to_wire
            }
            #[inline]
            fn check_wire(wire: &#wire, ctx: &#krate::field::Ctx) -> ::core::result::Result<(), #krate::Error> {
                #krate::field::enums::check::<Self>(#get, ctx)
            }
            #[inline]
            fn from_wire(wire: &#wire) -> Self {
                #krate::field::enums::from_checked::<Self>(#get)
            }
            #[inline]
            fn wire_view<'a>(wire: &#wire) -> <Self as #krate::Field>::View<'a> {
                <Self as #krate::Field>::from_wire(wire)
            }
            fn view_slot<'a>(
                _: &mut #krate::wire::Reader<'a>,
                _: bool,
                _: &#krate::field::Ctx,
            ) -> ::core::result::Result<<Self as #krate::Field>::Slot<'a>, #krate::Error> {
                ::core::result::Result::Ok(())
            }
            #[inline]
            fn view_field<'a>(wire: &#wire, _: <Self as #krate::Field>::Slot<'a>) -> <Self as #krate::Field>::View<'a> {
                <Self as #krate::Field>::from_wire(wire)
            }
            fn from_view(view: Self) -> Self {
                view
            }
        }
    })
}

/// The `#[repr(..)]` integer of an enum.
fn repr(input: &DeriveInput) -> syn::Result<Ident> {
    let mut found = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        attr.parse_nested_meta(|meta| {
            if let Some(ident) = meta.path.get_ident() {
                found = Some(ident.clone());
            }
            Ok(())
        })?;
    }
    found.ok_or_else(|| {
        syn::Error::new(
            input.span(),
            "TPF enums need #[repr(u8)], #[repr(u16)], #[repr(u32)] or #[repr(u64)]",
        )
    })
}
