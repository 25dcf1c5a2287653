//! The ShopMax product catalog, and the one line format in which products are written into an
//! LLM prompt: the chatbot writes it and the mock LLM reads it, so both sides share this code.
//!
//! # Layout
//! - [`Product`], [`Catalog::embedded`]: the catalog shipped in `data/products.json`.
//! - [`Product::prompt_line`], [`parse_prompt_line`]: the grounding format.
//! - [`Product::embedding_text`]: what is embedded for retrieval.

use serde::{Deserialize, Serialize};

/// One product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Stable id, e.g. `samsung-65-qled`.
    pub id: String,
    /// Display name, e.g. `Samsung 65 QLED`.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Category, e.g. `Television`.
    pub category: String,
    /// Price in Indian rupees.
    pub price_inr: u64,
    /// Warehouse city that ships it.
    pub warehouse: String,
    /// Units in stock there.
    pub stock: u32,
    /// Feature phrases, e.g. `5G connectivity`.
    pub features: Vec<String>,
}

/// Why the catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The JSON did not parse.
    #[error("catalog JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    /// A product is unusable.
    #[error("product {id:?} is invalid: {reason}")]
    Invalid {
        /// The product id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// The line a prompt carries instead of products when product lookup failed, so that the model
/// says the lookup is down rather than that the product does not exist.
pub const LOOKUP_UNAVAILABLE: &str = "(product lookup is unavailable right now)";

/// Separator between fields of a prompt line; never part of a product field.
const SEP: &str = " | ";

impl Product {
    /// The product as one prompt line:
    /// `- Samsung 65 QLED | category: Television | price: Rs 85000 | warehouse: Mumbai | stock: 14 | features: HDR10+; Tizen smart TV`.
    pub fn prompt_line(&self) -> String {
        format!(
            "- {}{SEP}category: {}{SEP}price: Rs {}{SEP}warehouse: {}{SEP}stock: {}{SEP}features: {}",
            self.name,
            self.category,
            self.price_inr,
            self.warehouse,
            self.stock,
            self.features.join("; ")
        )
    }

    /// The text embedded for retrieval: name, brand, category and features.
    pub fn embedding_text(&self) -> String {
        format!(
            "{} by {}. {}. {}",
            self.name,
            self.brand,
            self.category,
            self.features.join(". ")
        )
    }

    fn validate(&self) -> Result<(), CatalogError> {
        let invalid = |reason: &str| CatalogError::Invalid {
            id: self.id.clone(),
            reason: reason.to_owned(),
        };
        let fields = [
            &self.id,
            &self.name,
            &self.brand,
            &self.category,
            &self.warehouse,
        ];
        if fields.iter().any(|f| f.trim().is_empty()) {
            return Err(invalid("empty field"));
        }
        let texts = fields.into_iter().chain(self.features.iter());
        for text in texts {
            if text.contains('|') || text.contains(';') || text.contains('\n') {
                return Err(invalid("fields may not contain '|', ';' or newlines"));
            }
        }
        if self.price_inr == 0 {
            return Err(invalid("price must be positive"));
        }
        Ok(())
    }
}

/// A product as read back from a prompt line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptProduct {
    /// Display name.
    pub name: String,
    /// Category.
    pub category: String,
    /// Price in rupees.
    pub price_inr: u64,
    /// Warehouse city.
    pub warehouse: String,
    /// Units in stock.
    pub stock: u32,
    /// Feature phrases.
    pub features: Vec<String>,
}

/// Parses a line written by [`Product::prompt_line`]; any other line gives `None`.
pub fn parse_prompt_line(line: &str) -> Option<PromptProduct> {
    let rest = line.trim().strip_prefix("- ")?;
    let mut parts = rest.split(SEP);
    let name = parts.next()?.trim().to_owned();
    let mut field = |label: &str| -> Option<String> {
        parts
            .next()?
            .strip_prefix(label)
            .map(|v| v.trim().to_owned())
    };
    let category = field("category:")?;
    let price_inr = field("price:")?.strip_prefix("Rs ")?.parse().ok()?;
    let warehouse = field("warehouse:")?;
    let stock = field("stock:")?.parse().ok()?;
    let features = field("features:")?
        .split(';')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    if name.is_empty() {
        return None;
    }
    Some(PromptProduct {
        name,
        category,
        price_inr,
        warehouse,
        stock,
        features,
    })
}

/// The product catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    products: Vec<Product>,
}

impl Catalog {
    /// Parses and validates a catalog from JSON (an array of products, unique ids).
    pub fn from_json(json: &str) -> Result<Self, CatalogError> {
        let products: Vec<Product> = serde_json::from_str(json)?;
        let mut seen = std::collections::HashSet::new();
        for product in &products {
            product.validate()?;
            if !seen.insert(product.id.as_str()) {
                return Err(CatalogError::Invalid {
                    id: product.id.clone(),
                    reason: "duplicate id".into(),
                });
            }
        }
        Ok(Self { products })
    }

    /// The catalog shipped with the binaries (`data/products.json`).
    pub fn embedded() -> Self {
        Self::from_json(include_str!("../data/products.json"))
            .expect("the embedded catalog is validated by this crate's tests")
    }

    /// All products, in file order.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The product with `id`.
    pub fn get(&self, id: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_valid_and_holds_the_seed_products() {
        let catalog = Catalog::from_json(include_str!("../data/products.json")).expect("valid");
        let samsung = catalog.get("samsung-65-qled").expect("Samsung 65 QLED");
        assert_eq!(samsung.name, "Samsung 65 QLED");
        assert_eq!(samsung.price_inr, 85000);
        assert_eq!(samsung.warehouse, "Mumbai");
        let oneplus = catalog.get("oneplus-11-5g").expect("OnePlus 11 5G");
        assert_eq!(oneplus.warehouse, "Bangalore");
        assert!(oneplus.features.iter().any(|f| f.contains("5G")));
    }

    #[test]
    fn embedded_catalog_is_a_realistic_store() {
        let catalog = Catalog::embedded();
        let products = catalog.products();
        assert!(products.len() >= 44, "{} products", products.len());
        let warehouses = [
            "Mumbai",
            "Bangalore",
            "Hyderabad",
            "Delhi",
            "Chennai",
            "Kolkata",
            "Pune",
        ];
        let mut names = std::collections::HashSet::new();
        for p in products {
            assert!(warehouses.contains(&p.warehouse.as_str()), "{}", p.id);
            assert!(
                names.insert(p.name.to_lowercase()),
                "duplicate name {}",
                p.name
            );
            assert!(!p.features.is_empty(), "{} lists no features", p.id);
            assert!((500..=500_000).contains(&p.price_inr), "{} price", p.id);
        }
        let categories: std::collections::HashSet<&str> =
            products.iter().map(|p| p.category.as_str()).collect();
        assert!(categories.len() >= 10, "{categories:?}");
        assert!(
            products.iter().any(|p| p.stock == 0),
            "some product should be out of stock, for the answers that say so"
        );
    }

    #[test]
    fn every_5g_phone_lists_5g_connectivity() {
        // The chatbot's "does it support 5G" answers quote this exact feature phrase.
        for p in Catalog::embedded().products() {
            let mentions_5g = p.name.contains("5G") || p.features.iter().any(|f| f.contains("5G"));
            if p.category == "Smartphone" && mentions_5g {
                assert!(
                    p.features.iter().any(|f| f == "5G connectivity"),
                    "{}",
                    p.id
                );
            }
        }
    }

    #[test]
    fn every_product_round_trips_through_its_prompt_line() {
        for product in Catalog::embedded().products() {
            let parsed = parse_prompt_line(&product.prompt_line()).expect("parses");
            assert_eq!(parsed.name, product.name);
            assert_eq!(parsed.category, product.category);
            assert_eq!(parsed.price_inr, product.price_inr);
            assert_eq!(parsed.warehouse, product.warehouse);
            assert_eq!(parsed.stock, product.stock);
            assert_eq!(parsed.features, product.features);
        }
    }

    #[rstest::rstest]
    #[case("")]
    #[case("Samsung 65 QLED costs a lot")]
    #[case("- X | category: TV | price: 12 | warehouse: Pune | stock: 1 | features: a")]
    #[case("- X | category: TV | price: Rs -3 | warehouse: Pune | stock: 1 | features: a")]
    #[case("- X | category: TV")]
    #[case("- é | category: ü | price: Rs 1 | warehouse: ß | stock: x | features: ")]
    fn other_lines_are_not_products(#[case] line: &str) {
        assert_eq!(parse_prompt_line(line), None);
    }

    #[test]
    fn invalid_catalogs_are_rejected() {
        assert!(Catalog::from_json("[").is_err());
        let dup = format!(
            "[{p},{p}]",
            p = r#"{"id":"a","name":"A","brand":"B","category":"C","price_inr":1,"warehouse":"W","stock":1,"features":[]}"#
        );
        assert!(Catalog::from_json(&dup).is_err());
        let bad = r#"[{"id":"a","name":"A|B","brand":"B","category":"C","price_inr":1,"warehouse":"W","stock":1,"features":[]}]"#;
        assert!(Catalog::from_json(bad).is_err());
    }
}
