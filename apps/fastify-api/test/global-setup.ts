// Generates the job store's Prisma clients once, before any test file starts an app.
export { default } from 'job-store/testing';
