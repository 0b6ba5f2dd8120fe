//! The request types name parameters as the client spelled them and keep the API's codes.

use serde_json::{json, Value};

use super::*;

fn reject<T: Request + std::fmt::Debug>(body: Value) -> Rejection {
    parse::<T>(&body).expect_err("refused")
}

#[test]
fn type_errors_name_the_path_and_echo_short_values() {
    let r = reject::<ColorsOptions>(json!({"max_colors": "ten"}));
    assert_eq!(r.kind, RejectionKind::Invalid);
    assert_eq!(r.parameter, "max_colors");
    assert_eq!(
        r.message,
        "max_colors must be an integer, not string \"ten\""
    );
    assert_eq!(r.details.unwrap()["value"], "ten");

    let r = reject::<SearchRequest>(json!({"text": "red", "filters": {"price_min": "cheap"}}));
    assert_eq!(r.parameter, "filters.price_min");
    assert!(
        r.message.starts_with("filters.price_min must be a number"),
        "{}",
        r.message
    );

    // A struct is never read from an array by position.
    let r = reject::<ColorsOptions>(json!([1, 2]));
    assert_eq!(r.parameter, "body");
    let r = parse_under::<ColorsOptions>(&json!([3]), "options.colors.").unwrap_err();
    assert_eq!(r.parameter, "options.colors");
}

#[test]
fn whole_numbers_accept_zero_fractions_only() {
    let o: ColorsOptions = parse(&json!({"max_colors": 3.0})).unwrap();
    assert_eq!(o.max_colors().unwrap(), 3);
    let r = reject::<ColorsOptions>(json!({"max_colors": 3.5}));
    assert_eq!(r.parameter, "max_colors");
    let r = reject::<ColorsOptions>(json!({"max_colors": 40}));
    assert_eq!(r.parameter, "max_colors");
    assert_eq!(r.details.unwrap()["value"], 40);
    let o: ColorsOptions = parse(&json!({"max_colors": null})).unwrap();
    assert_eq!(o.max_colors().unwrap(), crate::limits::DEFAULT_COLORS);
}

#[test]
fn exactly_one_query_form() {
    let r = reject::<SearchRequest>(json!({"top_k": 3}));
    assert_eq!(r.kind, RejectionKind::Missing);
    assert_eq!(r.parameter, "image_url");
    let alts = &r.details.unwrap()["alternatives"];
    assert_eq!(
        alts,
        &json!(["image_url", "image_base64", "product_id", "text", "image"])
    );

    let r = reject::<SearchRequest>(json!({"product_id": "a", "text": "b"}));
    assert_eq!(r.kind, RejectionKind::Invalid);
    assert_eq!(r.parameter, "text");

    let mut s: SearchRequest = parse(&json!({"product_id": "p1", "top_k": 7})).unwrap();
    assert_eq!(s.top_k().unwrap(), 7);
    assert_eq!(s.take_query(), SearchQuery::Product("p1".into()));
}

#[test]
fn catalog_bodies_refuse_unknown_fields_and_normalise() {
    let r = reject::<ProductUpload>(
        json!({"title": "t", "image_url": "http://a/b.jpg", "colour": "red"}),
    );
    assert_eq!(r.parameter, "colour");
    let r = reject::<SearchRequest>(json!({"text": "x", "filters": {"categroy": "dress"}}));
    assert_eq!(r.parameter, "filters.categroy");

    let p: ProductUpload = parse(&json!({
        "title": "  Linen dress ", "image_base64": "AAAA", "currency": "eur", "price": 12.5
    }))
    .unwrap();
    assert_eq!(p.title.as_deref(), Some("Linen dress"));
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    let p: ProductUpload = parse(&json!({"title": "t", "image_base64": "AAAA"})).unwrap();
    assert_eq!(p.currency.as_deref(), Some("USD"));

    let r = reject::<ProductUpload>(json!({"image_url": "http://a/b.jpg"}));
    assert_eq!(
        (r.kind, r.parameter.as_str()),
        (RejectionKind::Missing, "title")
    );
    let r =
        reject::<ProductUpload>(json!({"title": "t", "image_url": "http://a/b.jpg", "price": -1}));
    assert_eq!(r.parameter, "price");
    let r =
        reject::<ProductUpload>(json!({"title": "t", "image_url": "http://a", "currency": "EURO"}));
    assert_eq!(r.parameter, "currency");
    let r = reject::<ProductUpload>(
        json!({"title": "t", "image_url": "http://a", "metadata": {"a": {"b": 1}}}),
    );
    assert_eq!(r.parameter, "metadata.a");

    let f: Filters = parse(&json!({"category": "Dress", "brand": " ACME "})).unwrap();
    assert_eq!(f.category.as_deref(), Some("dress"));
    assert_eq!(f.brand.as_deref(), Some("acme"));
    let r = reject::<Filters>(json!({"price_min": 10, "price_max": 5}));
    assert_eq!(r.parameter, "price_min");
}

#[test]
fn nested_rules_are_prefixed() {
    let r = reject::<SearchRequest>(json!({"text": "x", "weights": {"visual": 0, "color": 0}}));
    assert_eq!(r.parameter, "weights");
    let r = reject::<SearchRequest>(json!({"text": "x", "weights": {"visual": 101}}));
    assert_eq!(r.parameter, "weights.visual");
    let r = reject::<SearchRequest>(json!({"text": "x", "cheaper_than": 0}));
    assert_eq!(r.parameter, "cheaper_than");
    let ids: Vec<String> = (0..=catalog::MAX_EXCLUDE).map(|i| i.to_string()).collect();
    let r = reject::<SearchRequest>(json!({"text": "x", "exclude_ids": ids}));
    assert_eq!(r.parameter, "exclude_ids");
}

#[test]
fn image_forms_and_batch_slots() {
    let both: ImageInput =
        parse(&json!({"image_url": "http://a", "image_base64": "AAAA"})).unwrap();
    let r = both.sources().unwrap_err();
    assert_eq!(
        (r.kind, r.parameter.as_str()),
        (RejectionKind::Invalid, "image_base64")
    );
    let none: ImageInput = parse(&json!({"max_colors": 3})).unwrap();
    assert_eq!(none.sources().unwrap_err().kind, RejectionKind::Missing);

    let input: ImageInput = parse(&json!({
        "images": [{"image_url": "http://a/1.jpg"}, {"image_url": 5}, {}, {"image_base64": "AAAA"}]
    }))
    .unwrap();
    let ImageSources::Batch(slots) = input.sources().unwrap() else {
        panic!("a batch")
    };
    assert_eq!(slots.len(), 4);
    assert!(slots[0].is_ok() && slots[3].is_ok());
    assert_eq!(
        slots[1].as_ref().unwrap_err().parameter,
        "images[1].image_url"
    );
    let missing = slots[2].as_ref().unwrap_err();
    assert_eq!(missing.kind, RejectionKind::Missing);
    assert!(
        missing.parameter.starts_with("images[2]."),
        "{}",
        missing.parameter
    );

    let many: Vec<Value> = (0..11).map(|_| json!({"image_base64": "AAAA"})).collect();
    let input: ImageInput = parse(&json!({"images": many})).unwrap();
    assert_eq!(input.sources().unwrap_err().parameter, "images");
    let input: ImageInput = parse(&json!({"images": []})).unwrap();
    assert_eq!(input.sources().unwrap_err().parameter, "images");
}

#[test]
fn batch_operations_and_their_options() {
    let r = reject::<BatchRequest>(json!({}));
    assert_eq!(
        (r.kind, r.parameter.as_str()),
        (RejectionKind::Missing, "operations")
    );
    let r = reject::<BatchRequest>(json!({"operations": ["colors", "sparkle"]}));
    assert_eq!(r.parameter, "operations[1]");
    assert!(r.message.contains("sparkle"), "{}", r.message);
    let r = reject::<BatchRequest>(json!({"operations": ["colors", "colors"]}));
    assert_eq!(r.parameter, "operations");
    let r = reject::<BatchRequest>(json!({"operations": ["colors"], "options": {"embed": {}}}));
    assert_eq!(r.parameter, "options.embed");
    let r = reject::<BatchRequest>(
        json!({"operations": ["colors"], "options": {"colors": {"segmentation_model": "u2net"}}}),
    );
    assert_eq!(r.parameter, "options.colors.segmentation_model");

    let b: BatchRequest =
        parse(&json!({"operations": ["colors"], "options": {"colors": {"max_colors": 99}}}))
            .unwrap();
    let r = b
        .options_for::<ColorsOptions>(crate::OperationKind::Colors)
        .unwrap_err();
    assert_eq!(r.parameter, "options.colors.max_colors");
}

#[test]
fn texts_are_bounded() {
    let r = reject::<TextInput>(json!({"text": "   "}));
    assert_eq!(r.parameter, "text");
    let r = reject::<TextInput>(json!({"texts": ["ok", ""]}));
    assert_eq!(r.parameter, "texts[1]");
    let long = "a".repeat(crate::limits::MAX_TEXT_CHARS + 1);
    assert_eq!(reject::<TextInput>(json!({"text": long})).parameter, "text");
    let r = reject::<SegmenterOptions>(json!({"model": "u2net", "segmentation_model": "u2netp"}));
    assert_eq!(r.parameter, "model");
}

#[test]
fn bodies_are_objects_without_repeated_keys() {
    let ok = json_object(
        br#"{"max_colors": 3, "images": [{"image_url": "u"}], "n": [1.5, null, true]}"#,
    )
    .unwrap();
    assert_eq!(ok["images"][0]["image_url"], "u");
    assert_eq!(ok["n"], json!([1.5, null, true]));

    let r = json_object(br#"{"max_colors": 3, "max_colors": 40}"#).unwrap_err();
    assert_eq!(r.parameter, "max_colors");
    assert_eq!(r.message, "max_colors is given more than once");
    let r =
        json_object(br#"{"images": [{"image_url": "a"}, {"image_url": "a", "image_url": "b"}]}"#)
            .unwrap_err();
    assert_eq!(r.parameter, "images[1].image_url");
    let r = json_object(br#"{"filters": {"metadata": {"a": 1, "a": 2}}}"#).unwrap_err();
    assert_eq!(r.parameter, "filters.metadata.a");

    assert_eq!(json_object(b"[1]").unwrap_err().parameter, "body");
    let r = json_object(b"{\"a\": 1} trailing").unwrap_err();
    assert_eq!(r.parameter, "body");
    assert!(
        r.message.starts_with("the body is not valid JSON"),
        "{}",
        r.message
    );
    assert_eq!(json_object(b"{\"a\": ").unwrap_err().parameter, "body");
}

#[test]
fn bodies_with_too_many_values_are_refused() {
    let zeros = format!("{{\"a\": [{}0]}}", "0,".repeat(MAX_JSON_VALUES));
    let r = json_object(zeros.as_bytes()).unwrap_err();
    assert_eq!(r.parameter, "body");
    assert!(r.message.contains("more than"), "{}", r.message);
    let fine = format!("{{\"a\": [{}0]}}", "0,".repeat(1_000));
    assert_eq!(
        json_object(fine.as_bytes()).unwrap()["a"]
            .as_array()
            .unwrap()
            .len(),
        1_001
    );
}
