import { rowId } from './ids.js';

/** What the storage part hands out. Times are milliseconds since the Unix epoch. */

export const SESSION_STATES = ['active', 'paused', 'closed', 'interrupted'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

export const MESSAGE_ROLES = ['user', 'assistant', 'system', 'tool'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

export type JsonObject = Record<string, unknown>;

export interface Session {
  id: string;
  channel: string;
  userId: string | null;
  state: SessionState;
  metadata: JsonObject | null;
  createdAt: number;
  updatedAt: number;
}

export interface Message {
  id: string;
  sessionId: string;
  role: MessageRole;
  content: string;
  tokenCount: number | null;
  metadata: JsonObject | null;
  createdAt: number;
}

export interface SessionRow {
  id: string;
  channel: string;
  user_id: string | null;
  state: SessionState;
  metadata: string | null;
  created_at: number;
  updated_at: number;
}

export interface MessageRow {
  seq: number;
  role: MessageRole;
  content: string;
  token_count: number | null;
  metadata: string | null;
  created_at: number;
}

export function sessionFromRow(r: SessionRow): Session {
  return {
    id: r.id,
    channel: r.channel,
    userId: r.user_id,
    state: r.state,
    metadata: r.metadata === null ? null : (JSON.parse(r.metadata) as JsonObject),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function messageFromRow(r: MessageRow, sessionId: string): Message {
  return {
    id: rowId(r.created_at, r.seq),
    sessionId,
    role: r.role,
    content: r.content,
    tokenCount: r.token_count,
    metadata: r.metadata === null ? null : (JSON.parse(r.metadata) as JsonObject),
    createdAt: r.created_at,
  };
}
