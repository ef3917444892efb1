//! The chat protocol (v1, see docs/protocol.md): what clients may ask, what
//! the server answers, and the rules for names. Pure data in, bytes out; the
//! reactor decides when to call it and where the bytes go.

pub mod names;
pub mod request;
pub mod wire;

/// Stable machine-readable error codes; see docs/protocol.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    UnknownType,
    InvalidRoom,
    InvalidText,
    InvalidCid,
    NotJoined,
    AlreadyJoined,
    TooManyRooms,
    Overloaded,
    Unavailable,
    RateLimited,
    InvalidUser,
    Forbidden,
    RoomExists,
    RoomFull,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::InvalidText => "invalid_text",
            ErrorCode::InvalidCid => "invalid_cid",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidUser => "invalid_user",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RoomExists => "room_exists",
            ErrorCode::RoomFull => "room_full",
        }
    }

    /// The human-readable sentence sent with the code.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "the frame is not a valid request object",
            ErrorCode::UnknownType => "unknown request type",
            ErrorCode::InvalidRoom => "room names are 1-64 characters of A-Z a-z 0-9 _ - . :",
            ErrorCode::InvalidText => {
                "text is empty, too long, or holds control characters other than tab and newline"
            }
            ErrorCode::InvalidCid => "cid must be 1-64 bytes",
            ErrorCode::NotJoined => "join the room first",
            ErrorCode::AlreadyJoined => "this socket is already in the room",
            ErrorCode::TooManyRooms => "too many rooms",
            ErrorCode::Overloaded => "server overloaded, retry later",
            ErrorCode::Unavailable => "storage unavailable, retry later",
            ErrorCode::RateLimited => "too many requests; slow down",
            ErrorCode::InvalidUser => "user names are 1-32 of A-Z a-z 0-9 _ - .",
            ErrorCode::Forbidden => "this room is private and you are not a member",
            ErrorCode::RoomExists => "a room with that name exists",
            ErrorCode::RoomFull => "the room has as many members as it may",
        }
    }
}
