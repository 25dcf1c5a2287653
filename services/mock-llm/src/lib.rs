//! An OpenAI-compatible mock LLM: deterministic, grounded answers with real o200k_base token counts (being written).
