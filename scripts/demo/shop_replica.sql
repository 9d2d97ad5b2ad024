-- The demo's replica: sluice-sink keeps these tables in step with `shop` (config/examples/sink-replica.toml).
DROP DATABASE IF EXISTS shop_replica;
CREATE DATABASE shop_replica CHARACTER SET utf8mb4;
USE shop_replica;

-- shop.users without its password column.
CREATE TABLE users (
    id         BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    email      VARCHAR(191) NOT NULL,
    name       VARCHAR(100) NOT NULL,
    created_at DATETIME(3) NOT NULL
);

-- shop.orders_00 .. orders_03 in one table, with a soft-delete mark and the row's seq.
CREATE TABLE orders (
    id         BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    user_id    BIGINT UNSIGNED NOT NULL,
    status     ENUM('new','paid','shipped','cancelled') NOT NULL,
    amount     DECIMAL(12,2) NOT NULL,
    items      JSON NOT NULL,
    note       TEXT NULL,
    created_at DATETIME(3) NOT NULL,
    updated_at TIMESTAMP(3) NOT NULL,
    deleted_at DATETIME(3) NULL,
    version    BIGINT NULL
);
