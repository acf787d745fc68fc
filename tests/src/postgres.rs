//! Test helper: a throwaway PostgreSQL database (URL from `F3_CHAOS_TEST_POSTGRES_URL`).
