CREATE TABLE customers (
  customer_id bigint PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
  email text NOT NULL, phone text, city text, acquisition_date date NOT NULL,
  lifetime_value numeric(12,2) CHECK (lifetime_value >= 0));
