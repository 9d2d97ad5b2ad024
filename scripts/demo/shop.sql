-- The demo's sample source database: a users table and orders sharded over four tables.
DROP DATABASE IF EXISTS shop;
CREATE DATABASE shop CHARACTER SET utf8mb4;
USE shop;

CREATE TABLE users (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email      VARCHAR(191) NOT NULL UNIQUE,
    name       VARCHAR(100) NOT NULL,
    password   VARCHAR(100) NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
);

CREATE TABLE orders_00 (
    id         BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    user_id    BIGINT UNSIGNED NOT NULL,
    status     ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
    amount     DECIMAL(12,2) NOT NULL,
    items      JSON NOT NULL,
    note       TEXT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);
CREATE TABLE orders_01 LIKE orders_00;
CREATE TABLE orders_02 LIKE orders_00;
CREATE TABLE orders_03 LIKE orders_00;
