CREATE TABLE customers (
  customer_id INTEGER PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL,
  email TEXT NOT NULL, phone TEXT, city TEXT, acquisition_date TEXT NOT NULL,
  lifetime_value NUMERIC CHECK (lifetime_value >= 0));
