CREATE TABLE customers (
  customer_id bigint PRIMARY KEY, first_name varchar(100) NOT NULL, last_name varchar(100) NOT NULL,
  email varchar(200) NOT NULL, phone varchar(50), city varchar(100), acquisition_date date NOT NULL,
  lifetime_value decimal(12,2) CHECK (lifetime_value >= 0)) ENGINE=InnoDB;
