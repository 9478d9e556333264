/**
 * Semantic-convention names that `@opentelemetry/semantic-conventions` has only in its
 * incubating entry, copied here so that adapters share one spelling and no package imports the
 * incubating entry (which may change in a minor release). Named as that package names them, so
 * moving to the stable entry is a change of import.
 */
export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const ATTR_MESSAGING_MESSAGE_ID = 'messaging.message.id';
export const ATTR_MESSAGING_BATCH_MESSAGE_COUNT = 'messaging.batch.message_count';

export const DB_SYSTEM_NAME_VALUE_SQLITE = 'sqlite';
