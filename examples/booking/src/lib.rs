//! A seat-booking Durable Object: one object per event, bookings in SQL, double bookings
//! refused inside a transaction. `GET /` answers the seats as JSON.
//!
//! The number of seats comes from the class's `SEATS` environment variable (default 50).

use serde::{Deserialize, Serialize};
use wasmdo::{DurableObject, Request, Response, params, sql, storage};

wasmdo::wit_bindgen::generate!({
    world: "booking-object",
    runtime_path: "wasmdo::wit_bindgen::rt",
});

use exports::example::booking::booking::{BookingError, Guest, Seat};

const DEFAULT_SEATS: u32 = 50;

struct Booking;

/// A row of the `bookings` table.
#[derive(Deserialize)]
struct Row {
    seat: u32,
    passenger: String,
}

impl From<wasmdo::Error> for BookingError {
    fn from(e: wasmdo::Error) -> Self {
        BookingError::Storage(e.to_string())
    }
}

/// How many seats the event has: the class's `SEATS`, else [`DEFAULT_SEATS`].
fn seat_count() -> u32 {
    wasmdo::env("SEATS")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_SEATS)
}

fn check_seat(seat: u32) -> Result<(), BookingError> {
    if (1..=seat_count()).contains(&seat) {
        Ok(())
    } else {
        Err(BookingError::NoSuchSeat)
    }
}

/// Who holds `seat`, if anyone.
fn holder(seat: u32) -> Result<Option<String>, wasmdo::Error> {
    let cursor = sql::exec(
        "SELECT passenger FROM bookings WHERE seat = ?",
        params![seat],
    )?;
    match cursor.rows().next() {
        Some(row) => row.get("passenger"),
        None => Ok(None),
    }
}

fn all_seats() -> Result<Vec<Seat>, wasmdo::Error> {
    let rows: Vec<Row> =
        sql::exec("SELECT seat, passenger FROM bookings ORDER BY seat", [])?.deserialize()?;
    let mut seats: Vec<Seat> = (1..=seat_count())
        .map(|number| Seat {
            number,
            passenger: None,
        })
        .collect();
    for row in rows {
        // Bookings beyond a since-lowered SEATS stay stored but are not shown.
        if let Some(seat) = seats.get_mut(row.seat as usize - 1) {
            seat.passenger = Some(row.passenger);
        }
    }
    Ok(seats)
}

impl Guest for Booking {
    fn book(seat: u32, passenger: String) -> Result<(), BookingError> {
        check_seat(seat)?;
        if passenger.trim().is_empty() {
            return Err(BookingError::InvalidPassenger);
        }
        // Check and write in one transaction: a refusal leaves nothing behind.
        storage::transaction(|| {
            if let Some(holder) = holder(seat)? {
                return Err(BookingError::AlreadyBooked(holder));
            }
            sql::exec(
                "INSERT INTO bookings (seat, passenger) VALUES (?, ?)",
                params![seat, passenger],
            )?;
            wasmdo::log::info!("seat {seat} booked");
            Ok(())
        })
    }

    fn cancel(seat: u32) -> Result<(), BookingError> {
        check_seat(seat)?;
        let cursor = sql::exec("DELETE FROM bookings WHERE seat = ?", params![seat])?;
        if cursor.rows_written == 0 {
            return Err(BookingError::NotBooked);
        }
        Ok(())
    }

    fn seats() -> Vec<Seat> {
        // No error case in the signature: a storage failure traps (the caller gets a 500).
        all_seats().expect("reading the bookings")
    }
}

/// A seat as `GET /` shows it.
#[derive(Serialize)]
struct SeatJson {
    number: u32,
    passenger: Option<String>,
}

impl DurableObject for Booking {
    fn init() -> Result<(), String> {
        sql::exec(
            "CREATE TABLE IF NOT EXISTS bookings (
                seat INTEGER PRIMARY KEY,
                passenger TEXT NOT NULL
            )",
            [],
        )?;
        Ok(())
    }

    fn fetch(req: Request) -> Result<Response, String> {
        if (req.method.as_str(), req.path.as_str()) != ("GET", "/") {
            return Ok(Response::text(404, "not found"));
        }
        let seats: Vec<SeatJson> = all_seats()?
            .into_iter()
            .map(|s| SeatJson {
                number: s.number,
                passenger: s.passenger,
            })
            .collect();
        Ok(Response::json(200, &seats)?)
    }
}

wasmdo::export_object!(Booking);
export!(Booking);
