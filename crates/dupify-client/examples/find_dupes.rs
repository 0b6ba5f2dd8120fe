//! Upload a few products, wait for their features, and find cheaper look-alikes of a photo.
//!
//! `DUPIFY_URL=http://127.0.0.1:8080 DUPIFY_API_KEY=fe_live_... \
//!  cargo run -p dupify-client --example find_dupes -- photo.jpg [more.jpg ...]`

use std::time::Duration;

use dupify_client::{
    Client, EmbeddingStatus, ImageSource, ListProducts, NewProduct, SearchQuery, SearchRequest,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DUPIFY_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = std::env::var("DUPIFY_API_KEY").map_err(|_| "set DUPIFY_API_KEY")?;
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        return Err("usage: find_dupes PHOTO [PHOTO ...]".into());
    }
    let client = Client::new(url, key)?;

    // Each file becomes a product priced by its position (the first is the dearest).
    let mut products = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let mut p = NewProduct::new(f.clone(), &ImageSource::from_path(f).await?);
        p.external_id = Some(format!("example-{i}"));
        p.price = Some(100.0 - 10.0 * i as f64);
        products.push(p);
    }
    let up = client.upload_products(&products).await?;
    println!(
        "{} created, {} updated, {} failed",
        up.created, up.updated, up.failed
    );

    // Features are extracted in the background.
    loop {
        let page = client
            .list_products(&ListProducts {
                embedding_status: Some(EmbeddingStatus::Processing),
                limit: Some(1),
                ..Default::default()
            })
            .await?;
        if page.total == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let mut q = SearchRequest::new(SearchQuery::Image(ImageSource::from_path(&files[0]).await?));
    q.cheaper_than = Some(100.0);
    q.top_k = Some(5);
    let hits = client.search(&q).await?;
    println!("cheaper than 100 (took {} ms):", hits.took_ms);
    for h in &hits.results {
        println!(
            "  {:.3}  {:<30} {:?}",
            h.score, h.product.title, h.product.price
        );
    }
    println!(
        "calls left this month: {:?}",
        hits.rate_limit.monthly_remaining
    );
    Ok(())
}
