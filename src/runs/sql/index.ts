/**
 * All SQL about runs, their events and their steps, one file per family of operations.
 * Functions take an executor (the database or an open transaction), so the service
 * decides the transaction boundaries; statements built once take the database.
 */
export * from './changes.js';
export * from './create.js';
export * from './runs.js';
export * from './transitions.js';
export * from './history.js';
export * from './steps.js';
export * from './items.js';
export * from './queue.js';
export * from './retention.js';
