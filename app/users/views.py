"""/api/v1/users: the members of the tenant."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from app.extensions import Blueprint
from app.pagination import page_schema
from app.tenancy.access import not_while_impersonating, roles

from . import service
from .schemas import UserCreateSchema, UserDeleteArgs, UserListArgs, UserPatchSchema, UserSchema

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="Members of the tenant")


@blp.route("")
class Users(MethodView):
    @roles("owner", "admin")
    @blp.arguments(UserListArgs, location="query")
    @blp.response(200, page_schema(UserSchema))
    def get(self, args):
        """List the tenant's users, filtered by role and active flag."""
        return service.list_users(args, args.get("role"), args.get("active"))

    @roles("owner", "admin")
    @not_while_impersonating
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    def post(self, body):
        """Add a user to the tenant (within the plan's `users` limit)."""
        return service.add_user(g.principal, body["email"], body["name"], body["password"], body["role"])


@blp.route("/<objectid:user_id>")
class UserById(MethodView):
    @roles("owner", "admin")
    @blp.response(200, UserSchema)
    def get(self, user_id):
        """Show one user."""
        return service.show_user(user_id)

    @roles("owner", "admin")
    @blp.arguments(UserPatchSchema)
    @blp.response(200, UserSchema)
    def patch(self, body, user_id):
        """Change a user's name, role, active flag or password (a new password or a deactivation ends
        their sessions); the last owner stays an owner."""
        return service.update_user(g.principal, user_id, body)

    @roles("owner", "admin")
    @blp.arguments(UserDeleteArgs, location="query")
    @blp.response(204)
    def delete(self, args, user_id):
        """Remove a user (the seat goes back to the `users` limit); with erase=true, erase their personal
        data (GDPR) and pseudonymize the audit entries naming them, idempotently."""
        if args["erase"]:
            service.erase_user(g.principal, user_id)
        else:
            service.delete_user(g.principal, user_id)
